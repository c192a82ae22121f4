import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Integration suites start real servers on free ports; two files at a time suit 2 cores.
    maxWorkers: 2,
    reporters: ['default'],
  },
});
