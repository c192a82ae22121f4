// Counters of one server process and their Prometheus text exposition. Each process takes a
// plain-data snapshot (sent over IPC when several workers run), and any process can render
// the snapshots of all workers as one exposition with a `worker` label on every series.
// Sources that keep their own counters (cache tiers, handler) are read when a snapshot is taken.

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface HistogramSample {
  readonly labels: Readonly<Record<string, string>>;
  /** Upper bounds, ascending, without +Inf. */
  readonly bounds: readonly number[];
  /** Cumulative counts per bound, then the total for +Inf. */
  readonly cumulative: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples?: readonly Sample[];
  readonly histograms?: readonly HistogramSample[];
}

export interface Snapshot {
  readonly worker: string;
  readonly families: readonly Family[];
}

/** Request latency buckets in seconds: a RAM hit is well under 1 ms, a big region seconds. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Histogram {
  private readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: readonly number[] = LATENCY_BUCKETS) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }
  observe(v: number): void {
    let i = 0;
    while (i < this.bounds.length && v > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
  sample(labels: Record<string, string> = {}): HistogramSample {
    const cumulative: number[] = [];
    let acc = 0;
    for (const c of this.counts) cumulative.push((acc += c));
    return { labels, bounds: this.bounds, cumulative, sum: this.sum, count: this.count };
  }
}

/** A counter keyed by one label value. */
export class LabelledCounter {
  private readonly values = new Map<string, number>();
  constructor(private readonly label: string) {}
  inc(value: string, by = 1): void {
    this.values.set(value, (this.values.get(value) ?? 0) + by);
  }
  get(value: string): number {
    return this.values.get(value) ?? 0;
  }
  samples(): Sample[] {
    return [...this.values].map(([v, n]) => ({ labels: { [this.label]: v }, value: n }));
  }
}

export type Collector = () => Family[];

/** Per-process request counters plus collectors that read counters kept elsewhere. */
export class Metrics {
  readonly requests = new LabelledCounter('protocol');
  readonly responses = new LabelledCounter('class');
  readonly latency = new Histogram();
  private readonly collectors: Collector[] = [];

  constructor(readonly worker: string) {}

  addCollector(c: Collector): void {
    this.collectors.push(c);
  }

  /** One finished request: protocol name (IIIF, IIP, ..., `none`), HTTP status, seconds. */
  observe(protocol: string, status: number, seconds: number): void {
    this.requests.inc(protocol);
    this.responses.inc(`${Math.floor(status / 100)}xx`);
    this.latency.observe(seconds);
  }

  snapshot(): Snapshot {
    const families: Family[] = [
      { name: 'iipsrv_requests_total', help: 'Requests by protocol.', type: 'counter', samples: this.requests.samples() },
      { name: 'iipsrv_responses_total', help: 'Responses by status class.', type: 'counter', samples: this.responses.samples() },
      {
        name: 'iipsrv_request_duration_seconds',
        help: 'Time from request to response in the server.',
        type: 'histogram',
        histograms: [this.latency.sample()],
      },
    ];
    for (const c of this.collectors) {
      try {
        families.push(...c());
      } catch {
        // a broken collector must not take the whole exposition down
      }
    }
    return { worker: this.worker, families };
  }
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  if (Number.isNaN(v)) return 'NaN';
  return String(v);
}

/**
 * Prometheus text format 0.0.4. Families with the same name from several snapshots are merged
 * (HELP and TYPE once), each sample labelled with its worker. `global` families (the master's)
 * are written without a worker label.
 */
export function renderPrometheus(snapshots: readonly Snapshot[], global: readonly Family[] = []): string {
  const order: string[] = [];
  const byName = new Map<string, { family: Family; lines: string[] }>();
  const add = (f: Family, extra: Record<string, string>): void => {
    let slot = byName.get(f.name);
    if (!slot) {
      slot = { family: f, lines: [] };
      byName.set(f.name, slot);
      order.push(f.name);
    }
    for (const s of f.samples ?? []) slot.lines.push(`${f.name}${labelText({ ...extra, ...s.labels })} ${num(s.value)}`);
    for (const h of f.histograms ?? []) {
      const labels = { ...extra, ...h.labels };
      h.bounds.forEach((b, i) => slot.lines.push(`${f.name}_bucket${labelText({ ...labels, le: num(b) })} ${h.cumulative[i]}`));
      slot.lines.push(`${f.name}_bucket${labelText({ ...labels, le: '+Inf' })} ${h.cumulative[h.bounds.length]}`);
      slot.lines.push(`${f.name}_sum${labelText(labels)} ${num(h.sum)}`);
      slot.lines.push(`${f.name}_count${labelText(labels)} ${h.count}`);
    }
  };
  for (const f of global) add(f, {});
  for (const s of snapshots) for (const f of s.families) add(f, { worker: s.worker });
  let out = '';
  for (const name of order) {
    const { family, lines } = byName.get(name)!;
    out += `# HELP ${name} ${family.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n# TYPE ${name} ${family.type}\n`;
    for (const l of lines) out += `${l}\n`;
  }
  return out;
}

export interface ParsedSample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Reads the sample lines of a text exposition (enough for `iipsrv status` and tests). */
export function parsePrometheus(text: string): ParsedSample[] {
  const out: ParsedSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (let l = re.exec(m[2] ?? ''); l; l = re.exec(m[2] ?? '')) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** Sum of the samples named `name` whose labels include `match`. */
export function sumOf(samples: readonly ParsedSample[], name: string, match: Record<string, string> = {}): number {
  let total = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}
