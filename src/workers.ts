// `--workers N`: a master process forks N workers with node:cluster and supervises them.
// Workers share the listening socket, whatever it is (`--bind` TCP or UNIX, the socket passed
// as fd 0 by spawn-fcgi/mod_fcgid/lighttpd, `--http`): the master owns it and hands accepted
// connections round-robin, which balances long-lived keep-alive connections from nginx evenly.
// The master serves no requests: it replaces crashed workers (with a growing delay when one
// keeps crashing), forwards SIGHUP, stops everyone gracefully on SIGTERM/SIGINT/SIGUSR1, and
// collects every worker's counters over IPC so that `?METRICS` from any worker shows them all.

import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import { LOG, type Logger } from './log.js';
import type { Family, Snapshot } from './metrics.js';
import { removeStaleSocket } from './frontends/fastcgi/server.js';

/** Parses `--workers`: a positive integer or `auto` (one per core). */
export function parseWorkers(value: string): number | undefined {
  if (value === 'auto') return os.availableParallelism();
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 1024 ? n : undefined;
}

/** The worker number (1..N) of this process, or undefined outside `--workers`. */
export function workerSlot(): string | undefined {
  return cluster.isWorker ? process.env.IIPSRV_WORKER : undefined;
}

type Message =
  | { iipsrv: 'collect'; id: number }
  | { iipsrv: 'snapshot?'; id: number }
  | { iipsrv: 'snapshot'; id: number; snapshot: Snapshot }
  | { iipsrv: 'aggregate'; id: number; snapshots: Snapshot[]; global: Family[] };

function isMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as { iipsrv?: unknown }).iipsrv === 'string';
}

export interface Aggregate {
  snapshots: Snapshot[];
  global: Family[];
}

/**
 * Worker side of the IPC: answers the master's requests for a snapshot, and returns the
 * function that asks the master for everyone's (falling back to its own if the master is slow).
 */
export function connectWorker(snapshot: () => Snapshot): () => Promise<Aggregate> {
  let next = 0;
  const pending = new Map<number, (a: Aggregate) => void>();
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    if (m.iipsrv === 'snapshot?') process.send?.({ iipsrv: 'snapshot', id: m.id, snapshot: snapshot() } satisfies Message);
    else if (m.iipsrv === 'aggregate') {
      pending.get(m.id)?.({ snapshots: m.snapshots, global: m.global });
      pending.delete(m.id);
    }
  });
  return () =>
    new Promise<Aggregate>((resolve) => {
      const id = ++next;
      const timer = setTimeout(() => {
        pending.delete(id);
        resolve({ snapshots: [snapshot()], global: [] });
      }, 2000);
      pending.set(id, (a) => {
        clearTimeout(timer);
        resolve(a);
      });
      process.send?.({ iipsrv: 'collect', id } satisfies Message);
    });
}

/**
 * Delay before restarting a worker that lived `livedMs`: none after a long life; for one that
 * dies young, 250 ms doubling on each further early death up to `maxMs`, so a worker crashing
 * in a loop (bad image, full disk) costs little CPU and does not flood the log.
 */
export function nextRestartDelay(livedMs: number, previousMs: number, youngMs: number, maxMs: number): number {
  return livedMs < youngMs ? Math.min(Math.max(previousMs * 2, 250), maxMs) : 0;
}

/**
 * Settings each worker gets besides its number, unless set already: the default decoded-samples
 * budget (256 MB per process) is shared out, so that `--workers auto` on a many-core machine does
 * not multiply it (each worker at least 32 MB); and so are the cores a JPEG 2000 decode may
 * split itself over while its worker is otherwise idle (decoders/jpeg2000/index.ts).
 */
export function workerEnvironment(workers: number, env: NodeJS.ProcessEnv, cores = os.availableParallelism()): Record<string, string> {
  const out: Record<string, string> = {};
  if (workers <= 1) return out;
  if (env.IIPSRV_DECODED_CACHE_MB === undefined) out.IIPSRV_DECODED_CACHE_MB = String(Math.max(32, Math.floor(256 / workers)));
  if (env.IIPSRV_J2K_DECODE_CORES === undefined) out.IIPSRV_J2K_DECODE_CORES = String(Math.max(1, Math.floor(cores / workers)));
  return out;
}

interface Slot {
  readonly number: number;
  worker?: Worker;
  startedAt: number;
  /** Delay before the next restart in ms; grows while the worker dies young. */
  delay: number;
  restarts: number;
  timer?: NodeJS.Timeout;
}

export interface MasterOptions {
  readonly workers: number;
  readonly logger: Logger;
  /** For `--bind /path`: a stale socket file left by a crash is removed before workers start. */
  readonly unixPath?: string;
  /** A worker that lived less than this is considered crashing in a loop. */
  readonly youngMs?: number;
  /** Longest delay between restarts of one slot. */
  readonly maxDelayMs?: number;
  /** How long workers get to finish in-flight requests on shutdown. */
  readonly stopTimeoutMs?: number;
}

/** Runs the master until it is told to stop; then exits the process. */
export async function runMaster(o: MasterOptions): Promise<void> {
  const { logger } = o;
  const youngMs = o.youngMs ?? 10_000;
  const maxDelayMs = o.maxDelayMs ?? 30_000;
  if (o.unixPath) await removeStaleSocket(o.unixPath);
  const started = Date.now();
  const slots: Slot[] = [];
  const bySlot = new Map<Worker, Slot>();
  // "Running" means serving: a forked worker counts once its front end listens.
  const listening = new Set<Worker>();
  let everListening = false;
  let failedBeforeListening = 0;
  let stopping = false;

  const fork = (slot: Slot): void => {
    slot.timer = undefined;
    slot.startedAt = Date.now();
    const w = cluster.fork({ IIPSRV_WORKER: String(slot.number), ...workerEnvironment(o.workers, process.env) });
    slot.worker = w;
    bySlot.set(w, slot);
    w.on('message', (m: unknown) => onMessage(w, m));
    w.on('error', () => {}); // IPC to a dying worker; its exit is handled below
  };

  cluster.on('listening', (w) => {
    const slot = bySlot.get(w);
    if (slot) listening.add(w);
    if (!everListening) {
      everListening = true;
      logger.log(LOG.ERROR, `master ${process.pid}: worker ${slot?.number} (pid ${w.process.pid}) is listening`);
    } else {
      logger.log(LOG.DETAIL, `master: worker ${slot?.number} (pid ${w.process.pid}) is listening`);
    }
  });

  cluster.on('exit', (w, code, signal) => {
    const slot = bySlot.get(w);
    bySlot.delete(w);
    listening.delete(w);
    if (!slot) return;
    slot.worker = undefined;
    if (stopping) {
      if (bySlot.size === 0) finish();
      return;
    }
    const lived = Date.now() - slot.startedAt;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (!everListening && code !== 0) {
      // Nothing ever started (port taken, bad socket path): exit like a single process would.
      if (++failedBeforeListening >= o.workers) {
        logger.log(LOG.ERROR, `master: every worker failed to start (last: ${how}); exiting`);
        process.stderr.write(`iipsrv: workers failed to start (${how}); see the messages above or LOGFILE\n`);
        stopping = true;
        for (const s of slots) if (s.timer) clearTimeout(s.timer);
        void logger.close().then(() => process.exit(1));
        return;
      }
    }
    slot.delay = nextRestartDelay(lived, slot.delay, youngMs, maxDelayMs);
    slot.restarts++;
    logger.log(
      LOG.ERROR,
      `master: worker ${slot.number} (pid ${w.process.pid}) exited with ${how} after ${(lived / 1000).toFixed(1)} s; restarting in ${(slot.delay / 1000).toFixed(2)} s`,
    );
    slot.timer = setTimeout(() => fork(slot), slot.delay);
  });

  // Metrics collection: one round per request from a worker.
  let nextRound = 0;
  const onMessage = (from: Worker, m: unknown): void => {
    if (!isMessage(m)) return;
    if (m.iipsrv === 'collect') collect(from, m.id);
  };
  const collect = (from: Worker, replyId: number): void => {
    const round = ++nextRound;
    const live = [...bySlot.keys()].filter((w) => w.isConnected());
    const got: Snapshot[] = [];
    let done = false;
    const finishRound = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const w of live) w.off('message', listener);
      got.sort((a, b) => Number(a.worker) - Number(b.worker));
      if (from.isConnected()) from.send({ iipsrv: 'aggregate', id: replyId, snapshots: got, global: globalFamilies() } satisfies Message);
    };
    const listener = (m: unknown): void => {
      if (isMessage(m) && m.iipsrv === 'snapshot' && m.id === round) {
        got.push(m.snapshot);
        if (got.length === live.length) finishRound();
      }
    };
    const timer = setTimeout(finishRound, 1000);
    for (const w of live) {
      w.on('message', listener);
      try {
        w.send({ iipsrv: 'snapshot?', id: round } satisfies Message);
      } catch {
        // exiting; the timer ends the round
      }
    }
    if (live.length === 0) finishRound();
  };
  const globalFamilies = (): Family[] => [
    {
      name: 'iipsrv_workers',
      help: 'Worker processes: configured, and running now.',
      type: 'gauge',
      samples: [
        { labels: { state: 'configured' }, value: o.workers },
        { labels: { state: 'running' }, value: listening.size },
      ],
    },
    {
      name: 'iipsrv_worker_restarts_total',
      help: 'Workers replaced after they exited, by worker number.',
      type: 'counter',
      samples: slots.map((s) => ({ labels: { worker: String(s.number) }, value: s.restarts })),
    },
    {
      name: 'iipsrv_master_uptime_seconds',
      help: 'Seconds since the master started.',
      type: 'gauge',
      samples: [{ labels: {}, value: (Date.now() - started) / 1000 }],
    },
    { name: 'iipsrv_master_process_id', help: 'Process id of the master.', type: 'gauge', samples: [{ labels: {}, value: process.pid }] },
  ];

  const finish = (): void => {
    clearTimeout(killTimer);
    logger.log(LOG.ERROR, 'master: all workers stopped');
    void logger.close().then(() => process.exit(0));
  };
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    logger.log(LOG.ERROR, `Caught ${signal} signal. Stopping ${bySlot.size} workers`);
    for (const s of slots) if (s.timer) clearTimeout(s.timer);
    if (bySlot.size === 0) return finish();
    for (const w of bySlot.keys()) w.process.kill('SIGTERM');
    killTimer = setTimeout(() => {
      for (const w of bySlot.keys()) w.process.kill('SIGKILL');
    }, o.stopTimeoutMs ?? 12_000);
    killTimer.unref();
  };
  for (const s of ['SIGTERM', 'SIGINT', 'SIGUSR1'] as const) process.on(s, () => stop(s));
  process.on('SIGHUP', () => {
    logger.log(LOG.ERROR, `Caught SIGHUP signal: telling ${bySlot.size} workers to empty their caches`);
    for (const w of bySlot.keys()) w.process.kill('SIGHUP');
  });
  process.on('uncaughtException', (err) => logger.log(LOG.ERROR, `master: uncaught exception: ${err.stack ?? err.message}`));

  for (let i = 1; i <= o.workers; i++) {
    const slot: Slot = { number: i, startedAt: 0, delay: 0, restarts: 0 };
    slots.push(slot);
    fork(slot);
  }
  logger.log(LOG.ERROR, `master ${process.pid}: started ${o.workers} workers`);
}
