import type { Writable } from 'stream';
import type { Fleet, GroupSummary } from './fleet';

// The terminal view of a fleet: one bar per dialect group. On a TTY the bars are redrawn in place
// (cursor up, clear line); otherwise a plain line per group is printed when it changed, at most
// once per interval, so logs and CI output stay readable.

const ORDER = ['connecting', 'idle', 'notified', 'downloading', 'downloaded', 'verified', 'updating', 'updated', 'failed', 'stopped'] as const;

export function renderBars(summary: GroupSummary[], width = 30): string[] {
  const label = Math.max(...summary.map((g) => g.dialect.length), 8);
  return summary.map((g) => {
    const filled = Math.round((g.percent / 100) * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const states = ORDER.filter((s) => g.states[s]).map((s) => `${s} ${g.states[s]}`).join(', ');
    return `${g.dialect.padEnd(label)} [${bar}] ${g.percent.toFixed(0).padStart(3)}%  ${g.updated}/${g.count} updated  (${states})`;
  });
}

export class ProgressDisplay {
  private timer?: NodeJS.Timeout;
  private drawn = 0;
  private lastPlain: string[] = [];
  private readonly tty: boolean;

  constructor(
    private readonly fleet: Fleet,
    private readonly out: Writable & { isTTY?: boolean; columns?: number } = process.stdout,
    private readonly intervalMs?: number,
  ) {
    this.tty = Boolean(out.isTTY);
  }

  start(): void {
    const every = this.intervalMs ?? (this.tty ? 100 : 1000);
    this.timer = setInterval(() => this.draw(), every);
    this.timer.unref();
    this.draw();
  }

  /** A line above the bars (logs), without breaking the in-place redraw. */
  log(line: string): void {
    if (this.tty) this.clear();
    this.out.write(line + '\n');
    if (this.tty && this.timer) this.draw();
  }

  draw(): void {
    const width = Math.max(10, Math.min(40, (this.out.columns ?? 100) - 70));
    const lines = renderBars(this.fleet.summary(), width);
    if (this.tty) {
      this.clear();
      this.out.write(lines.join('\n') + '\n');
      this.drawn = lines.length;
      return;
    }
    lines.forEach((line, i) => {
      if (line !== this.lastPlain[i]) this.out.write(line + '\n');
    });
    this.lastPlain = lines;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.draw();
  }

  private clear(): void {
    if (this.drawn > 0) this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }
}
