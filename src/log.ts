// Logging as iipsrv does it: one destination (LOGFILE), VERBOSITY levels 0 (off) to 5+
// (debug). Level 1 is start-up and errors, 2 adds one line per request with its timing.
// Writes are buffered by a stream so a slow disk never blocks a request.

import fs from 'node:fs';

export interface Logger {
  readonly verbosity: number;
  log(level: number, message: string): void;
  close(): Promise<void>;
}

export const LOG = { ERROR: 1, REQUEST: 2, DETAIL: 3, DEBUG: 5 } as const;

/** Worker tag put in front of every line when several processes share one log. */
let prefix = '';
export function setLogPrefix(p: string): void {
  prefix = p ? `${p} ` : '';
}

function stamp(): string {
  return new Date().toISOString();
}

export function createLogger(logfile: string, verbosity: number): Logger {
  if (verbosity <= 0) return silentLogger;
  let stream: NodeJS.WritableStream;
  if (logfile === '' || logfile === '-' || logfile === '/dev/stderr' || logfile === 'syslog') {
    // Node has no syslog client; stderr reaches the journal under systemd.
    stream = process.stderr;
  } else if (logfile === '/dev/stdout') {
    stream = process.stdout;
  } else {
    const file = fs.createWriteStream(logfile, { flags: 'a' });
    file.on('error', (err) => {
      process.stderr.write(`iipsrv: cannot write LOGFILE (${err.message}); logging to stderr\n`);
      stream = process.stderr;
    });
    stream = file;
  }
  return {
    verbosity,
    log(level, message) {
      if (level <= verbosity) stream.write(`${stamp()} ${prefix}${message}\n`);
    },
    close() {
      return new Promise((resolve) => {
        if (stream === process.stderr || stream === process.stdout) resolve();
        else stream.end(() => resolve());
      });
    },
  };
}

export const silentLogger: Logger = {
  verbosity: 0,
  log() {},
  close: () => Promise.resolve(),
};
