import * as fs from 'fs';
import * as path from 'path';
import { JsonDocument, readJsonSync } from '../atomic-file';
import type { Rollout } from './model';
import type { RolloutPersistence } from './ports';

// Rollouts on disk, beside the repository's other documents:
//   rollouts.json     the rollouts, written atomically (temp file + rename), at most every 200 ms
//   rollouts.journal  one fsync'd line per batch of notices, written before they go out
// A kill -9 loses at most the last snapshot's lag; the journal says which devices were released
// since, so a restart never sends one of them a second notice and never skips one.

interface Snapshot {
  seq: number;
  rollouts: Rollout[];
}

interface JournalLine {
  s: number;
  r: string;
  d: string[];
  t: number;
}

export class FileRolloutPersistence implements RolloutPersistence {
  private readonly file: string;
  private readonly journal: string;
  private readonly doc: JsonDocument<Snapshot>;
  private seq = 0;
  private snapshotSeq = 0;
  private current: () => Rollout[] = () => [];
  private readonly loaded: Snapshot;
  /** The write the last save() joined: one compaction per write, not one per save() call. */
  private writing?: Promise<void>;
  /** The journal may hold lines (true at start: an old run may have left some). */
  private journalUsed = true;

  constructor(dir: string, minIntervalMs = 200) {
    this.file = path.join(dir, 'rollouts.json');
    this.journal = path.join(dir, 'rollouts.journal');
    this.loaded = readJsonSync<Snapshot>(this.file, { seq: 0, rollouts: [] });
    this.seq = this.loaded.seq;
    this.doc = new JsonDocument(this.file, () => {
      this.snapshotSeq = this.seq;
      return { seq: this.seq, rollouts: this.current() };
    }, 0o644, minIntervalMs);
  }

  load(): Rollout[] {
    return this.loaded.rollouts;
  }

  replay(): Map<string, Array<{ devices: string[]; at: number }>> {
    const out = new Map<string, Array<{ devices: string[]; at: number }>>();
    let text = '';
    try {
      text = fs.readFileSync(this.journal, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const raw of text.split('\n')) {
      if (!raw) continue;
      let line: JournalLine;
      try {
        line = JSON.parse(raw) as JournalLine;
      } catch {
        continue; // a line torn by the kill: its notices were never sent (the write comes first)
      }
      this.seq = Math.max(this.seq, line.s);
      if (line.s <= this.loaded.seq) continue;
      out.set(line.r, [...(out.get(line.r) ?? []), { devices: line.d, at: line.t }]);
    }
    return out;
  }

  save(snapshot: () => Rollout[]): void {
    this.current = snapshot;
    // Called on every device event; the document coalesces them into one write per interval.
    const writing = this.doc.save();
    if (writing === this.writing) return;
    this.writing = writing;
    writing.then(() => this.compact(), () => undefined);
  }

  released(rollout: string, devices: string[], at: number): void {
    this.seq += 1;
    const line: JournalLine = { s: this.seq, r: rollout, d: devices, t: at };
    this.journalUsed = true;
    const fd = fs.openSync(this.journal, 'a', 0o644);
    try {
      fs.writeSync(fd, JSON.stringify(line) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Once a snapshot holding every journal line has landed, the journal is empty again. */
  private compact(): void {
    if (!this.journalUsed || this.snapshotSeq !== this.seq) return;
    if (fs.existsSync(this.journal)) fs.truncateSync(this.journal, 0);
    this.journalUsed = false;
  }

  async flush(): Promise<void> {
    await this.doc.flush();
    this.compact();
  }
}

/** For specs and for a repository without a directory: the same contract, in memory. */
export class MemoryRolloutPersistence implements RolloutPersistence {
  rollouts: Rollout[] = [];
  journal: Array<{ rollout: string; devices: string[]; at: number }> = [];
  private current: () => Rollout[] = () => [];

  load(): Rollout[] {
    return JSON.parse(JSON.stringify(this.rollouts)) as Rollout[];
  }

  replay(): Map<string, Array<{ devices: string[]; at: number }>> {
    const out = new Map<string, Array<{ devices: string[]; at: number }>>();
    for (const j of this.journal) out.set(j.rollout, [...(out.get(j.rollout) ?? []), { devices: j.devices, at: j.at }]);
    return out;
  }

  save(snapshot: () => Rollout[]): void {
    this.current = snapshot;
  }

  released(rollout: string, devices: string[], at: number): void {
    this.journal.push({ rollout, devices: [...devices], at });
  }

  /** Writes the snapshot (a spec decides when: before or after a simulated crash). */
  async flush(): Promise<void> {
    this.rollouts = JSON.parse(JSON.stringify(this.current())) as Rollout[];
    this.journal = [];
  }
}
