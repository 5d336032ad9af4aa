import chalk, { Chalk, type ChalkInstance } from 'chalk';

/**
 * Chalk for terminal reports. Chalk already turns colour off for a non-TTY stdout and honours
 * FORCE_COLOR, but not NO_COLOR (https://no-color.org: any non-empty value disables colour).
 */
export function reportChalk(color?: boolean): ChalkInstance {
  const enabled = color ?? !process.env.NO_COLOR;
  return new Chalk({ level: enabled ? chalk.level : 0 });
}
