import type { OtaRepository } from '../repository';
import type { DeviceRecord, FirmwareRecord } from '../types';
import type { RolloutTracker } from '../device-updates/tracker';
import type { DeviceStatus, RolloutEffects } from './ports';
import { dialectOf } from '../dialects';

// The engine's effects on the repository: assignments recorded in the rollout store and notices
// sent through the tracker's 'command' event (ota-assign nodes publish them through mqtt out),
// exactly as POST /ota/assignments does, only for the devices the engine releases.

export class RepositoryEffects implements RolloutEffects {
  constructor(
    private readonly repo: OtaRepository,
    private readonly tracker: RolloutTracker,
  ) {}

  private devices(ids: string[]): DeviceRecord[] {
    return ids.map((id) => this.repo.devices.get(id)).filter((d): d is DeviceRecord => d !== undefined);
  }

  private firmware(id: string): FirmwareRecord | undefined {
    return this.repo.firmware.get(id);
  }

  notify(firmware: string, ids: string[]): void {
    const f = this.firmware(firmware);
    // Gone from the catalogue before its first release: nothing to send; the devices show it (status()).
    if (f) this.tracker.assign(f, this.devices(ids));
  }

  retry(firmware: string, ids: string[]): void {
    this.notify(firmware, ids);
  }

  clear(_firmware: string, ids: string[]): void {
    this.tracker.unassign(ids);
  }

  revert(firmware: string, ids: string[]): void {
    this.notify(firmware, ids);
  }

  adopt(firmware: string, ids: string[]): void {
    const f = this.firmware(firmware);
    if (!f) return;
    for (const d of this.devices(ids)) {
      if (this.repo.rollout.get(d.id)?.firmware === f.id) continue;
      const r = this.repo.rollout.assign(d.id, d.dialect, f);
      if (r.state !== 'updated') this.repo.rollout.markNotified(d.id);
    }
  }

  status(device: string): DeviceStatus | undefined {
    const s = this.repo.rollout.get(device);
    if (!s) return undefined;
    return {
      ...(s.firmware ? { firmware: s.firmware } : {}),
      state: s.state,
      ...(s.lastError ? { error: s.lastError.message } : {}),
      ...(dialectOf(s.dialect)?.reports === 'none' ? { silent: true } : {}),
    };
  }
}
