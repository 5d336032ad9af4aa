/**
 * Exit codes are part of the CLI contract (docs/design.md#exit-codes): scripts and CI branch on them,
 * so every failure the tool can foresee is one of these typed errors.
 */
export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  checkFailed: 3,
  environment: 4,
  /** The disk (or the user's quota) filled up while a file was written: nothing half-written is left (docs/design.md#exit-codes). */
  diskFull: 5,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class MoeblazeError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flag or value; raised before any GPU work. */
export class UsageError extends MoeblazeError {
  constructor(message: string) {
    super(message, ExitCode.usage);
  }
}

/** No adapter, or a required feature or limit is missing. The message carries the fix. */
export class EnvironmentError extends MoeblazeError {
  constructor(message: string) {
    super(message, ExitCode.environment);
  }
}

/** A verification or gate check failed. */
export class CheckFailedError extends MoeblazeError {
  constructor(message: string) {
    super(message, ExitCode.checkFailed);
  }
}

/**
 * Which limit refused a buffer: the adapter's buffer or binding size, --memory-limit on live bytes
 * (reserved bytes are kept under it by releasing pooled buffers, src/gpu/allocator.ts), the
 * device itself, or a planned peak above --memory-limit before anything ran.
 */
export type MemoryLimitKind = 'max-buffer-size' | 'max-binding-size' | 'memory-limit-live' | 'device' | 'planned';

/**
 * ENOSPC or EDQUOT while writing `path`: the write was abandoned (its temporary file removed) and
 * the old file, if any, is intact. Not a bug, so not exit 1; the message names the file.
 */
export class DiskFullError extends MoeblazeError {
  constructor(
    readonly path: string,
    detail = '',
  ) {
    super(`disk full writing ${path}${detail}`, ExitCode.diskFull);
  }
}

/** A buffer could not be allocated: a result for benchmarks, not a crash. */
export class OutOfMemoryError extends MoeblazeError {
  constructor(
    message: string,
    readonly requestedBytes: number,
    readonly bufferName: string,
    readonly limit: MemoryLimitKind = 'device',
  ) {
    super(message, ExitCode.environment);
  }
}

/** A GPU validation error or device loss, attributed to the kernel that was running. */
export class GpuError extends MoeblazeError {
  constructor(
    message: string,
    readonly kernel: string,
  ) {
    super(message, ExitCode.internal);
  }
}

export function exitCodeOf(error: unknown): ExitCode {
  return error instanceof MoeblazeError ? error.exitCode : ExitCode.internal;
}
