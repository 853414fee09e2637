/** The output of a run: each row judged against its target, the printed table, and the JSON-lines results file. */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import { resultsDir } from './options.js';
import { value, type Row, type WorkloadId } from './rows.js';
import type { Measurement } from './workload-kit.js';

export function fmt(v: number | null, unit: string): string {
  if (v === null || Number.isNaN(v)) return '—';
  if (unit === '/s' || unit === '') return Math.round(v).toLocaleString('en-US');
  if (unit === 'ms') return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
  if (unit === 's') return v < 10 ? v.toFixed(3) : v.toFixed(2);
  if (unit === 'x') return v.toFixed(2);
  return v.toFixed(1);
}

export interface Judged {
  mupdated: number | null;
  cyrus: number | null;
  ratio: number | null;
  target: string;
  met: boolean | null;
}

export function judge(row: Row, m: Measurement | undefined, c: Measurement | undefined): Judged {
  const mv = m ? row.get(m) : null;
  const cv = c && (row.only !== 'mupdated' || row.cyrus) ? row.get(c) : null;
  let ratio: number | null = null;
  if (mv !== null && cv !== null && mv > 0 && cv > 0) ratio = row.better === 'higher' ? mv / cv : cv / mv;
  else if (mv !== null && cv !== null && row.better === 'higher' && cv === 0 && mv > 0) ratio = Infinity;
  // every target given must hold: met is false if one fails, n/a (null) if one cannot be judged
  const parts: string[] = [];
  const results: Array<boolean | null> = [];
  const t = row.target ?? {};
  if (t.min !== undefined) {
    parts.push(`>= ${t.min.toLocaleString('en-US')}`);
    results.push(mv === null ? false : mv >= t.min);
  }
  if (t.ratio !== undefined) {
    parts.push(`>= ${t.ratio}x`);
    results.push(ratio === null ? null : ratio >= t.ratio);
  }
  if (t.max !== undefined) {
    parts.push(`<= ${t.max} ${row.unit}`);
    results.push(mv === null ? false : mv <= t.max);
  }
  const met = results.length === 0 ? null : results.includes(false) ? false : results.includes(null) ? null : true;
  return { mupdated: mv, cyrus: cv, ratio, target: parts.join(' and '), met };
}

export function table(rows: Array<{ row: Row; j: Judged }>, cyrusRan: boolean): string {
  const head = ['workload', 'mupdated', 'Cyrus', 'ratio', 'target', 'met?'];
  const lines = rows.map(({ row, j }) => [
    `${row.label}${row.unit && row.unit !== '/s' ? ` (${row.unit})` : row.unit === '/s' ? ' (/s)' : ''}`,
    fmt(j.mupdated, row.unit),
    cyrusRan && row.only !== 'mupdated' ? fmt(j.cyrus, row.unit) : '—',
    j.ratio === null ? '—' : j.ratio === Infinity ? 'inf' : `${j.ratio >= 100 ? Math.round(j.ratio) : j.ratio.toFixed(1)}x`,
    j.target,
    j.met === null ? (j.target ? 'n/a' : '') : j.met ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmtLine = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [
    fmtLine(head),
    `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...lines.map(fmtLine),
  ].join('\n');
}

export function machine(): Record<string, unknown> {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    /* not Linux */
  }
  return { cores: cpus().length, cpu, ramGiB: Math.round(totalmem() / 2 ** 30), node: process.versions.node, host: hostname() };
}

export function loadAvg(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return '';
  }
}

export type Results = Map<WorkloadId, Measurement>;

export interface RunInfo {
  started: Date;
  /** quick, standard or scale-10m. */
  mode: string;
  loadAtStart: string;
  versions: Record<string, string>;
  /** The header record's own fields (sizes, preload times, ...). */
  header: Record<string, unknown>;
  harnessError: string | null;
  /** Printed under the title (what was not measured and why). */
  notes: string[];
}

/**
 * Judges the rows that ran, writes `<resultsDir>/<run id>[-mode].jsonl`
 * (a header record, then one record per row) and prints the table. Returns
 * the exit status: 1 when an answer was wrong or the harness failed.
 */
export function report(rows: Row[], m: Results | undefined, c: Results | undefined, info: RunInfo): number {
  const { started, mode, harnessError } = info;
  const ran = (row: Row) => m?.has(row.workload) || c?.has(row.workload);
  const judged = rows
    .filter((row) => harnessError !== null || ran(row))
    .map((row) => ({ row, j: judge(row, m?.get(row.workload), c?.get(row.cyrus ?? row.workload)) }));
  const mach = machine();
  const runId = started.toISOString().replace(/[:.]/g, '-');
  const records = judged.map(({ row, j }) => {
    const mm = m?.get(row.workload);
    const cm = row.only === 'mupdated' ? undefined : c?.get(row.cyrus ?? row.workload);
    const primary = row.get === value;
    return {
      run: runId,
      mode,
      workload: row.id,
      label: row.label,
      unit: row.unit,
      better: row.better,
      mupdated: j.mupdated,
      cyrus: j.cyrus,
      ratio: j.ratio === Infinity ? 'inf' : j.ratio,
      target: j.target || null,
      met: j.met,
      correct: (mm?.correct ?? false) && (cm?.correct ?? true),
      ...(mm?.error || cm?.error ? { errors: { mupdated: mm?.error, cyrus: cm?.error } } : {}),
      ...(primary ? { details: { mupdated: mm?.details, cyrus: cm?.details } } : {}),
    };
  });
  const loadAtEnd = loadAvg();
  const header = {
    run: runId,
    mode,
    workload: 'run',
    date: started.toISOString(),
    machine: mach,
    loadAvg: { atStart: info.loadAtStart, atEnd: loadAtEnd },
    versions: info.versions,
    ...info.header,
    correct: harnessError === null,
    ...(harnessError ? { error: harnessError } : {}),
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${runId}${mode === 'standard' ? '' : `-${mode}`}.jsonl`);
  writeFileSync(file, [header, ...records].map((r) => JSON.stringify(r)).join('\n') + '\n');
  const { versions } = info;
  const out = [
    '',
    `mupdated vs Cyrus, ${mode} run, ${started.toISOString()}`,
    `machine: ${String(mach.cores)} cores, ${String(mach.cpu)}, ${String(mach.ramGiB)} GiB RAM; ${versions.mupdated ?? ''}${versions.cyrus ? `; ${versions.cyrus}` : ''}`,
    ...info.notes,
    'client: one Node process sharing the cores with the server under test; servers run one at a time',
    `load average (1/5/15 min) at start: ${info.loadAtStart}; at end: ${loadAtEnd}`,
    '',
    table(judged, c !== undefined),
    '',
    `results: ${file}`,
  ]
    .filter((l, i, a) => l !== '' || a[i - 1] !== '')
    .join('\n');
  process.stdout.write(`${out}\n`);
  const wrong = records.filter((r) => !r.correct);
  if (harnessError || wrong.length) {
    process.stderr.write(
      `bench: ${harnessError ? 'harness error' : ''}${wrong.length ? ` wrong answers in: ${wrong.map((r) => r.workload).join(', ')}` : ''}\n`,
    );
    for (const r of wrong) if (r.errors) process.stderr.write(`  ${r.workload}: ${JSON.stringify(r.errors).slice(0, 1000)}\n`);
    return 1;
  }
  return 0;
}
