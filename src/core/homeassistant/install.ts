import type { OtaRepository } from '../repository';
import type { DeviceRecord, FirmwareRecord } from '../types';
import { trackerFor } from '../device-updates/tracker';
import { assign } from '../admin/requests';

// What Install in Home Assistant does: the same assignment as POST /ota/assignments (a rollout of
// one group, seen in /ota/rollouts; the flow's ota-assign nodes send the notice through mqtt out).
export async function startInstall(repo: OtaRepository, device: DeviceRecord, firmware: FirmwareRecord): Promise<void> {
  await assign(repo, trackerFor(repo), { firmware: firmware.id, devices: [device.id] });
}
