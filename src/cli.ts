#!/usr/bin/env node
// Command line: `iipsrv --bind host:port [--backlog N]` (FastCGI on TCP or a UNIX socket),
// no arguments with a listening socket on fd 0 (spawn-fcgi, mod_fcgid, lighttpd bin-path),
// or `--http [host:]port` (standalone HTTP with the demo viewer); `--workers N` in any of
// them; `iipsrv status` reads a running server's counters. Signals follow iipsrv:
// SIGHUP empties the caches; SIGTERM, SIGINT and SIGUSR1 exit 0 after in-flight requests.

import cluster from 'node:cluster';
import fs from 'node:fs';
import { loadConfig } from './config.js';
import { createFastCgiServer, isListeningSocketOnFd0 } from './frontends/fastcgi/server.js';
import { createHttpFrontEnd } from './frontends/http.js';
import { createLogger, LOG, setLogPrefix } from './log.js';
import { rootOf } from './image/resolve.js';
import { createServerCore } from './server.js';
import { fetchMetrics, formatStatus, parseHostPort } from './status.js';
import { createViewerRoutes, listImages, packageRoot } from './viewer.js';
import { connectWorker, parseWorkers, runMaster, workerSlot } from './workers.js';

const USAGE = `Usage:
  iipsrv --bind <host:port | :port | /path/to/socket> [--backlog <n>]   FastCGI server
  iipsrv                                   FastCGI on a listening socket passed as fd 0
                                           (spawn-fcgi, Apache mod_fcgid, lighttpd bin-path)
  iipsrv --http [<host>:]<port>            standalone HTTP server with a demo viewer
  iipsrv status [--bind <host:port | /path/to/socket> | --url <http://...>] [--raw]
                                           counters of a running server (all its workers)
  iipsrv --help | --version

Options for serving:
  --workers <n | auto>   worker processes sharing the socket (default 1; auto = one per core)

Configuration comes from iipsrv's environment variables (FILESYSTEM_PREFIX, MAX_CVT,
JPEG_QUALITY, CORS, URI_MAP, LOGFILE, VERBOSITY, ...); see README.md.
`;

interface Args {
  bind?: string;
  backlog: number;
  http?: string;
  workers: number;
  status: boolean;
  url?: string;
  raw: boolean;
  help: boolean;
  version: boolean;
}

function fail(message: string): never {
  process.stderr.write(`iipsrv: ${message}\n\n${USAGE}`);
  process.exit(1);
}

export function parseArgs(argv: string[]): Args {
  const args: Args = { backlog: 2048, workers: 1, status: false, raw: false, help: false, version: false };
  if (argv[0] === 'status') {
    args.status = true;
    argv = argv.slice(1);
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) fail(`${a} needs a value`);
      return v;
    };
    if (a === '--bind') args.bind = value();
    else if (a === '--backlog') {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) fail('--backlog needs a positive integer');
      args.backlog = n;
    } else if (a === '--http') args.http = value();
    else if (a === '--workers') {
      const v = value();
      const n = parseWorkers(v);
      if (n === undefined) fail(`--workers expects a positive integer or "auto" but received "${v}"`);
      args.workers = n;
    } else if (a === '--url' && args.status) args.url = value();
    else if (a === '--raw' && args.status) args.raw = true;
    else if (a === '--help' || a === '-h') args.help = true;
    else if (a === '--version' || a === '-v') args.version = true;
    else fail(`unknown argument ${a}`);
  }
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const version = JSON.parse(fs.readFileSync(`${packageRoot()}/package.json`, 'utf8')).version as string;
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.version) {
    process.stdout.write(`iipsrv ${version} (TypeScript, Node ${process.version})\n`);
    return;
  }

  if (args.status) {
    try {
      const text = await fetchMetrics({ bind: args.bind, url: args.url });
      process.stdout.write(args.raw ? text : formatStatus(text));
    } catch (err) {
      process.stderr.write(`iipsrv status: ${(err as Error).message}\n`);
      process.exit(1);
    }
    return;
  }

  const slot = workerSlot();
  if (slot) setLogPrefix(`[worker ${slot}]`);
  else if (args.workers > 1) setLogPrefix('[master]');
  const { config, warnings, settings } = loadConfig(process.env);
  const logger = createLogger(config.logfile, config.verbosity);
  // Workers repeat none of the start-up messages: the master has written them once.
  if (!slot) {
    for (const w of warnings) {
      process.stderr.write(`iipsrv: ${w}\n`);
      logger.log(LOG.ERROR, w);
    }
    logger.log(LOG.ERROR, `iipsrv ${version} starting (pid ${process.pid})`);
    for (const [k, v] of settings) logger.log(LOG.DETAIL, `Setting ${k} to ${v}`);
  } else {
    logger.log(LOG.DETAIL, `worker ${slot} starting (pid ${process.pid})`);
  }

  if (args.workers > 1 && cluster.isPrimary) {
    // Refuse what a single process would refuse before forking anything.
    if (!args.http && !args.bind && !isListeningSocketOnFd0()) {
      logger.log(LOG.ERROR, 'CGI-only mode detected');
      fail('no --bind, no --http, and file descriptor 0 is not a listening socket (CGI is not supported)');
    }
    const unixPath = args.bind && !parseHostPort(args.bind, '0.0.0.0') ? args.bind : undefined;
    logger.log(LOG.ERROR, `Starting ${args.workers} worker processes`);
    await runMaster({ workers: args.workers, logger, unixPath });
    return;
  }

  const httpConfig = args.http && !config.uriMap ? { ...config, uriMap: { prefix: 'iiif', protocol: 'IIIF' as const } } : config;
  const core = await createServerCore(httpConfig, logger, { worker: slot ?? '0' });
  if (slot) core.setAggregator(connectWorker(() => core.metrics.snapshot()));
  let close: () => Promise<void>;

  if (args.http) {
    const hp = parseHostPort(args.http, undefined);
    if (!hp) fail(`--http expects [host:]port but received "${args.http}"`);
    const front = createHttpFrontEnd(core.handler, {
      staticRoute: createViewerRoutes(rootOf(config.filesystemPrefix)),
      logger: (l, m) => logger.log(l, m),
    });
    core.trackConnections(front.server);
    const addr = await front.listen(hp.host, hp.port);
    const shown = addr.address === '::' || addr.address === '0.0.0.0' ? 'localhost' : addr.address;
    const base = `http://${shown.includes(':') ? `[${shown}]` : shown}:${addr.port}`;
    if (!slot || slot === '1') {
      // Concrete URLs for the first image found, so a first run has something to click.
      const first = (await listImages(rootOf(config.filesystemPrefix), 1))[0];
      const id = first ? first.split('/').map(encodeURIComponent).join('/') : '<image>';
      process.stdout.write(
        `iipsrv ${version}: HTTP on ${base}\n` +
          `  viewer:    ${base}/\n` +
          `  IIIF:      ${base}/iiif/${id}/info.json\n` +
          `             ${base}/iiif/${id}/full/512,/0/default.jpg\n` +
          `  IIP:       ${base}/fcgi-bin/iipsrv.fcgi?FIF=${id}&OBJ=Max-size&OBJ=Resolution-number\n` +
          `             ${base}/fcgi-bin/iipsrv.fcgi?FIF=${id}&JTL=0,0\n` +
          `  Zoomify:   ${base}/fcgi-bin/iipsrv.fcgi?Zoomify=${id}/ImageProperties.xml\n` +
          `  DeepZoom:  ${base}/fcgi-bin/iipsrv.fcgi?DeepZoom=${id}.dzi\n` +
          `  health:    ${base}/health   metrics: ${base}/metrics\n`,
      );
    }
    logger.log(LOG.ERROR, `Running in HTTP mode on ${base}`);
    close = () => front.close();
  } else {
    const fcgi = createFastCgiServer(core.handler, { logger: (l, m) => logger.log(l, m) });
    core.trackConnections(fcgi.server);
    if (args.bind) {
      const hp = parseHostPort(args.bind, '0.0.0.0');
      try {
        if (hp) await fcgi.listenTcp(hp.host ?? '0.0.0.0', hp.port, args.backlog);
        // Workers share the master's socket (the master removed a stale one): it is live.
        else await fcgi.listenPath(args.bind, args.backlog, !slot);
      } catch (err) {
        logger.log(LOG.ERROR, `Unable to open socket '${args.bind}': ${(err as Error).message}`);
        process.stderr.write(`iipsrv: unable to open socket '${args.bind}': ${(err as Error).message}\n`);
        process.exit(1);
      }
      logger.log(LOG.ERROR, `Running in standalone mode on socket: ${args.bind} with backlog: ${args.backlog}`);
    } else if (isListeningSocketOnFd0()) {
      try {
        await fcgi.listenFd(0);
      } catch (err) {
        fail(`file descriptor 0 is a socket but not a listening one (${(err as Error).message})`);
      }
      logger.log(LOG.ERROR, 'Running on the FastCGI socket passed as file descriptor 0');
    } else {
      logger.log(LOG.ERROR, 'CGI-only mode detected');
      fail('no --bind, no --http, and file descriptor 0 is not a listening socket (CGI is not supported)');
    }
    close = () => fcgi.close();
  }

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.log(LOG.ERROR, `Caught ${signal} signal. Terminating after ${core.handler.stats.requests} accesses`);
    const timer = setTimeout(() => process.exit(0), 5000);
    timer.unref();
    void close()
      .catch(() => {})
      .then(() => core.close())
      .then(() => logger.close())
      .then(() => process.exit(0));
  };
  for (const s of ['SIGTERM', 'SIGINT', 'SIGUSR1'] as const) process.on(s, () => stop(s));
  process.on('SIGHUP', () => {
    logger.log(LOG.ERROR, 'Caught SIGHUP signal: emptying caches');
    void core.clearCaches();
  });
  process.on('uncaughtException', (err) => {
    // A bug in one request must not take the process down with every other request in it.
    logger.log(LOG.ERROR, `uncaught exception: ${err.stack ?? err.message}`);
  });
  process.on('unhandledRejection', (err) => {
    logger.log(LOG.ERROR, `unhandled rejection: ${String(err)}`);
  });
}

void main();
