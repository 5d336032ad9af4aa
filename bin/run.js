#!/usr/bin/env node
import { followParent, quietOnBrokenPipe, runFiltered, wantsFilter } from '../dist/src/cli/dawn-stderr.js';

// Dawn's harmless limit warnings are written by native code to stderr: filter them in a parent
// process unless --verbose asks for everything (src/cli/dawn-stderr.ts says why).
if (wantsFilter(process.argv.slice(2), process.env)) {
  // argv[1] as given (a bin link under npx), so the child records the command as the user typed it.
  runFiltered(process.argv[1]);
} else {
  followParent(process.env);
  quietOnBrokenPipe(process.stdout);
  quietOnBrokenPipe(process.stderr);
  const { execute } = await import('@oclif/core');
  await execute({ dir: import.meta.url });
}
