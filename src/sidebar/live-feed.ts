import type { OtaRepository } from '../core/repository';
import type { DeviceChange } from '../core/devices';
import { trackerFor } from '../core/device-updates/tracker';
import { rolloutEvents, rolloutsFor } from '../core/rollouts/service';
import { DeviceRow, deviceRow } from './rows';

// What the editor's OTA sidebar hears live from one repository, coalesced: at most one message
// per topic per tick (4 a second by default), only the devices that changed since the last tick,
// lists (firmware, rollouts) only when they differ from what was last sent, and a retained summary
// for editors that open later. The editor fetches the full state once from the admin API and
// applies these on top. Knows nothing of Node-RED: `publish` is RED.comms.publish in the plugin.

export type Publish = (topic: string, data: unknown, retain?: boolean) => void;

export interface LiveFeedOptions {
  /** Between two sends (ms): 250 is four updates a second. */
  intervalMs?: number;
  /**
   * Bytes of device rows one tick may send. A 10,000-device rollout changes more rows a second
   * than an editor needs to see: the rest wait for the next tick (the oldest change goes first,
   * the summary stays exact), so an open editor's traffic stays bounded whatever the fleet does.
   */
  rowBytesPerTick?: number;
  /** Lists (firmware, rollouts) are compared and sent at most this often when nothing marked them. */
  listCheckMs?: number;
}

export interface DevicesDelta {
  rows: DeviceRow[];
  removed: string[];
  /** Rows still waiting for a later tick (the table is that far behind). */
  pending: number;
}

export class LiveFeed {
  private readonly dirty = new Set<string>();
  private listsDirty = true;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastSent = 0;
  private readonly sentLists = new Map<string, string>();
  private listTimer: ReturnType<typeof setInterval> | undefined;
  private readonly intervalMs: number;
  private readonly rowBytes: number;
  private readonly onProgress = (_ev: unknown, record: { device: string }) => this.mark(record.device);
  private readonly onUnassigned = (devices: string[]) => devices.forEach((d) => this.mark(d));
  private readonly onDevice = (change: DeviceChange) => this.mark(change.id);
  private readonly onRollout = () => this.markLists();

  constructor(private readonly repo: OtaRepository, private readonly prefix: string, private readonly publish: Publish, options: LiveFeedOptions = {}) {
    this.intervalMs = options.intervalMs ?? 250;
    this.rowBytes = options.rowBytesPerTick ?? 10_000;
    const tracker = trackerFor(repo);
    tracker.on('progress', this.onProgress);
    tracker.on('unassigned', this.onUnassigned);
    repo.devices.on('change', this.onDevice);
    rolloutEvents(repo).on('event', this.onRollout);
    // Firmware stored by a flow node or deleted, a rollout's counts after its devices moved: cheap
    // to compare (the lists are short), and only a difference is sent.
    this.listTimer = setInterval(() => this.markLists(), options.listCheckMs ?? 1000);
    this.listTimer.unref?.();
    this.schedule();
  }

  /** Stops listening; the retained summary is withdrawn so a later editor does not show a stale one. */
  close(): void {
    const tracker = trackerFor(this.repo);
    tracker.off('progress', this.onProgress);
    tracker.off('unassigned', this.onUnassigned);
    this.repo.devices.off('change', this.onDevice);
    rolloutEvents(this.repo).off('event', this.onRollout);
    if (this.timer) clearTimeout(this.timer);
    if (this.listTimer) clearInterval(this.listTimer);
    this.timer = undefined;
    this.listTimer = undefined;
    this.publish(`${this.prefix}/summary`, null, true);
  }

  private mark(device: string): void {
    this.dirty.add(device);
    this.listsDirty = true;
    this.schedule();
  }

  private markLists(): void {
    this.listsDirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || !this.listTimer) return;
    const wait = Math.max(0, this.lastSent + this.intervalMs - Date.now());
    this.timer = setTimeout(() => this.tick(), wait);
    this.timer.unref?.();
  }

  /** One send: the summary if it changed, the rows that fit the budget, lists that changed. */
  tick(): void {
    this.timer = undefined;
    this.lastSent = Date.now();
    if (this.dirty.size) this.publish(`${this.prefix}/devices`, this.takeRows());
    if (this.listsDirty) {
      this.listsDirty = false;
      this.sendIfChanged('summary', { ...this.repo.rollout.summary(), devices: this.repo.devices.size, firmware: this.repo.firmware.list().length }, true);
      this.sendIfChanged('firmware', this.repo.firmware.list());
      this.sendIfChanged('rollouts', rolloutsFor(this.repo).list());
    }
    if (this.dirty.size) this.schedule();
  }

  private takeRows(): DevicesDelta {
    const rows: DeviceRow[] = [];
    const removed: string[] = [];
    let bytes = 0;
    for (const id of this.dirty) {
      if (bytes >= this.rowBytes) break;
      this.dirty.delete(id);
      const device = this.repo.devices.get(id);
      if (!device) {
        removed.push(id);
        bytes += id.length + 3;
        continue;
      }
      const row = deviceRow(device, this.repo.rollout.get(id));
      rows.push(row);
      bytes += JSON.stringify(row).length + 1;
    }
    return { rows, removed, pending: this.dirty.size };
  }

  private sendIfChanged(topic: string, data: unknown, retain = false): void {
    const text = JSON.stringify(data);
    if (this.sentLists.get(topic) === text) return;
    this.sentLists.set(topic, text);
    this.publish(`${this.prefix}/${topic}`, data, retain);
  }
}
