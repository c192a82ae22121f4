// Assembles one server process: configuration, logging, decoders, the image registry, the
// cache tiers (RAM, then Memcached when MEMCACHED_SERVERS is set), counters, and the handler
// wrapped with the two routes that are about the server rather than an image: `HEALTH`
// (`?HEALTH` or `/health`) and `METRICS` (`?METRICS` or `/metrics`, Prometheus text).
// Front ends are attached by the CLI (or by tests).

import type net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import sharp from 'sharp';
import { clearLevelCache } from '../decoders/jpeg2000/index.js';
import { clearTileCache } from '../decoders/tiff/index.js';
import { DecoderRegistry } from '../decoders/registry.js';
import { IndexStore } from './jpeg2000/index-store.js';
import { LayeredStore } from './cache/layered.js';
import { MemcachedStore, parseMemcachedServers } from './cache/memcached.js';
import { RamLruStore } from './cache/ram-lru.js';
import type { CacheStore } from './cache/store.js';
import type { Config } from './config.js';
import { createHandler, SERVER_NAME, type HandlerStats } from './handler.js';
import type { RequestHandler, ServerRequest, ServerResponse } from './handler-types.js';
import { availableFormats } from './image/encode.js';
import { ImageRegistry } from './image/registry.js';
import { LOG, type Logger } from './log.js';
import { Metrics, renderPrometheus, type Family, type Snapshot } from './metrics.js';

export interface ServerCore {
  /** The request handler, health and metrics routes included. */
  readonly handler: RequestHandler & { stats: HandlerStats };
  readonly images: ImageRegistry;
  /** RAM, then Memcached when configured. */
  readonly cache: LayeredStore;
  readonly ram: RamLruStore;
  readonly memcached?: MemcachedStore;
  readonly metrics: Metrics;
  /** How `METRICS` gathers snapshots; a worker replaces it to ask the master for all workers. */
  setAggregator(fn: () => Promise<{ snapshots: Snapshot[]; global: Family[] }>): void;
  /** Counts the open connections of a front end's listening server. */
  trackConnections(server: net.Server): void;
  /** Empties every cache this process owns (SIGHUP). Memcached is shared and left alone. */
  clearCaches(): Promise<void>;
  close(): Promise<void>;
}

/** `?HEALTH`, `/health`, `?METRICS`, `/metrics`: the server's own routes. */
export function serverRoute(req: ServerRequest): 'health' | 'metrics' | undefined {
  const q = req.query.toUpperCase();
  if (q === 'HEALTH') return 'health';
  if (q === 'METRICS') return 'metrics';
  if (req.query === '') {
    const p = req.requestUri.split('?')[0];
    if (p === '/health') return 'health';
    if (p === '/metrics') return 'metrics';
  }
  return undefined;
}

export interface CoreOptions {
  /** Label of this process in the counters: `0` for a single process, 1..N for workers. */
  readonly worker?: string;
}

export async function createServerCore(config: Config, logger: Logger, options: CoreOptions = {}): Promise<ServerCore> {
  // libvips' own operation cache holds decoded pixels of recent files; our caches do that job.
  sharp.cache(false);
  // One store of JPEG 2000 packet indexes (persisted in JPIP_CACHE) for JPIP and the decoder.
  const indexes = new IndexStore({ dir: config.jpipCache, log: (m) => logger.log(LOG.ERROR, m) });
  const decoders = new DecoderRegistry(undefined, { maxLayers: config.maxLayers, indexStore: indexes });
  if (config.decoderModules) {
    const errors = await decoders.loadModules(config.decoderModules);
    for (const e of errors) logger.log(LOG.ERROR, `DECODER_MODULES: ${e}`);
  }
  for (const notice of decoders.notices()) logger.log(LOG.ERROR, notice);
  const images = new ImageRegistry(decoders, config.maxMetadataCacheSize);
  const ram = new RamLruStore(config.maxImageCacheBytes);
  const tiers: CacheStore[] = [ram];
  let memcached: MemcachedStore | undefined;
  const { servers } = parseMemcachedServers(config.memcachedServers);
  if (servers.length > 0) {
    memcached = new MemcachedStore({
      servers,
      expirySeconds: config.memcachedTimeout,
      maxItemBytes: config.memcachedMaxItemBytes,
      deadlineMs: config.memcachedDeadlineMs,
      retrySeconds: config.memcachedRetrySeconds,
      log: (m) => logger.log(LOG.ERROR, m),
    });
    tiers.push(memcached);
    const m = memcached;
    // Not awaited: start-up must not wait for (or fail because of) a cache.
    void m
      .probe()
      .then((err) =>
        logger.log(
          LOG.ERROR,
          err === undefined
            ? `Memcached: ${config.memcachedServers} reachable; expiry ${config.memcachedTimeout} s, items up to ${config.memcachedMaxItemBytes} bytes`
            : `Memcached: ${config.memcachedServers} not reachable yet (${err}); lookups count as misses until it answers`,
        ),
      );
  } else {
    logger.log(LOG.DETAIL, 'Memcached: off (MEMCACHED_SERVERS is not set)');
  }
  const cache = new LayeredStore(tiers);
  const inner = createHandler({ config, logger, images, cache, formats: availableFormats(), indexes });

  const metrics = new Metrics(options.worker ?? '0');
  const started = Date.now();
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let openConnections = 0;
  metrics.addCollector(() => {
    const c = (
      name: string,
      help: string,
      samples: Array<[Record<string, string>, number]>,
      type: 'counter' | 'gauge' = 'counter',
    ): Family => ({
      name,
      help,
      type,
      samples: samples.map(([labels, value]) => ({ labels, value })),
    });
    const s = inner.stats;
    const mem = process.memoryUsage();
    const out: Family[] = [
      c(
        'iipsrv_cache_hits_total',
        'Image responses answered from a cache tier.',
        Object.entries(cache.stats.hits).map(([tier, n]) => [{ tier }, n]),
      ),
      c('iipsrv_cache_misses_total', 'Image responses found in no cache tier.', [[{}, cache.stats.misses]]),
      c('iipsrv_passthrough_total', 'Tiles sent as stored in the file, without decoding.', [[{}, s.passthrough]]),
      c('iipsrv_renders_total', 'Responses decoded and encoded.', [[{}, s.renders]]),
      c('iipsrv_errors_total', 'Requests answered with an error.', [[{}, s.errors]]),
      c('iipsrv_ram_cache_bytes', 'Bytes held by the RAM cache.', [[{}, ram.usedBytes]], 'gauge'),
      c('iipsrv_ram_cache_entries', 'Entries in the RAM cache.', [[{}, ram.size]], 'gauge'),
      c('iipsrv_open_connections', 'Front-end connections open now.', [[{}, openConnections]], 'gauge'),
      c('iipsrv_resident_memory_bytes', 'Resident set size of the process.', [[{}, mem.rss]], 'gauge'),
      c('iipsrv_heap_used_bytes', 'V8 heap in use.', [[{}, mem.heapUsed]], 'gauge'),
      c(
        'iipsrv_event_loop_delay_p99_seconds',
        'Event-loop delay, 99th percentile since start.',
        [[{}, loopDelay.percentile(99) / 1e9]],
        'gauge',
      ),
      c('iipsrv_uptime_seconds', 'Seconds since the process started.', [[{}, (Date.now() - started) / 1000]], 'gauge'),
      c('iipsrv_process_id', 'Operating-system process id.', [[{}, process.pid]], 'gauge'),
    ];
    if (memcached) {
      const m = memcached.stats;
      out.push(
        c('iipsrv_memcached_operations_total', 'Memcached gets and sets by outcome.', [
          [{ op: 'get', result: 'hit' }, m.hits],
          [{ op: 'get', result: 'miss' }, m.misses],
          [{ op: 'set', result: 'ok' }, m.writes],
        ]),
        c('iipsrv_memcached_errors_total', 'Failed Memcached operations (each counted as a miss).', [[{}, m.errors]]),
        c('iipsrv_memcached_timeouts_total', 'Memcached operations that ran into their deadline (MEMCACHED_DEADLINE_MS for lookups).', [
          [{}, m.timeouts],
        ]),
        c('iipsrv_memcached_bypassed_total', 'Operations skipped while the circuit breaker was open.', [[{}, m.bypassed]]),
        c('iipsrv_memcached_skipped_total', 'Responses not stored in Memcached.', [
          [{ reason: 'too_large' }, m.tooLarge],
          [{ reason: 'foreign_value' }, m.foreign],
        ]),
        c(
          'iipsrv_memcached_circuit_open',
          '1 while Memcached is not asked after failures.',
          [[{}, memcached.state === 'closed' ? 0 : 1]],
          'gauge',
        ),
        c('iipsrv_memcached_circuit_opened_total', 'Times the circuit breaker opened.', [[{}, memcached.breaker.opened]]),
      );
    }
    return out;
  });

  let aggregate = async (): Promise<{ snapshots: Snapshot[]; global: Family[] }> => ({ snapshots: [metrics.snapshot()], global: [] });

  const plain = (status: number, contentType: string, body: string, head: boolean): ServerResponse => {
    const bytes = Buffer.from(body);
    return {
      status,
      headers: [
        ['Server', SERVER_NAME],
        ['Content-Type', contentType],
        ['Cache-Control', 'no-cache'],
        ['Content-Length', String(bytes.length)],
      ],
      body: head ? Buffer.alloc(0) : bytes,
    };
  };

  const handler = async (req: ServerRequest): Promise<ServerResponse> => {
    const t0 = process.hrtime.bigint();
    const own = req.method === 'GET' || req.method === 'HEAD' ? serverRoute(req) : undefined;
    let res: ServerResponse;
    let protocol: string;
    if (own === 'health') {
      // No I/O: a load balancer asks often and wants to know the process answers.
      res = plain(200, 'text/plain; charset=utf-8', 'ok\n', req.method === 'HEAD');
      protocol = 'health';
    } else if (own === 'metrics') {
      const { snapshots, global } = await aggregate();
      res = plain(200, 'text/plain; version=0.0.4; charset=utf-8', renderPrometheus(snapshots, global), req.method === 'HEAD');
      protocol = 'metrics';
    } else {
      const handled = await inner(req);
      res = handled;
      protocol = handled.protocol ?? 'unknown';
    }
    metrics.observe(protocol, res.status, Number(process.hrtime.bigint() - t0) / 1e9);
    return res;
  };

  return {
    handler: Object.assign(handler, { stats: inner.stats }),
    images,
    cache,
    ram,
    memcached,
    metrics,
    setAggregator(fn) {
      aggregate = fn;
    },
    trackConnections(server) {
      server.on('connection', (socket: net.Socket) => {
        openConnections++;
        socket.once('close', () => openConnections--);
      });
    },
    async clearCaches() {
      ram.clear();
      clearLevelCache();
      clearTileCache();
      await images.clear();
    },
    async close() {
      loopDelay.disable();
      memcached?.close();
    },
  };
}
