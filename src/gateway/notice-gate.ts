import type * as mqtt from 'mqtt-packet';
import type { DeviceIdentity } from './directory';

// Sming's notice is one retained message per app and version line, the image itself: every
// device subscribed there takes it at once. A staged rollout can still hold it back from the
// devices of later groups when they connect through the gateway: the gateway delivers it only
// to the devices the rollout released. The rollout engine answers (ota-gateway wires it in);
// the gateway knows nothing of rollouts.

export interface NoticeGate {
  /** May this device have its firmware notice now? False while its rollout holds it back. */
  released(deviceId: string): boolean;
}

/** True when the broker's message is a Sming notice the device must not have yet (acknowledged upstream, dropped). */
export function withheld(gate: NoticeGate | undefined, device: DeviceIdentity, packet: mqtt.IPublishPacket): boolean {
  if (!gate || device.dialect !== 'sming') return false;
  // An empty retained message clears the notice: the device ignores it, and it never flashes anything.
  if (!packet.payload || packet.payload.length === 0) return false;
  return !gate.released(device.deviceId);
}
