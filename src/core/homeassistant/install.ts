import type { OtaRepository } from '../repository';
import type { DeviceRecord, FirmwareRecord } from '../types';
import { trackerFor } from '../rollout/tracker';

// What Install in Home Assistant does: the same assignment the admin API makes (tracker.assign
// records it and has the flow's ota-assign nodes send the notice through mqtt out). One function,
// so that when assignments become one-group rollouts this is the one line to re-point.
export function startInstall(repo: OtaRepository, device: DeviceRecord, firmware: FirmwareRecord): Promise<void> {
  return trackerFor(repo).assign(firmware, [device]).settled;
}
