import { OtaError } from '../types';
import type { TargetDevice } from './ports';

/**
 * Sming's notice is one retained message per app and version line (a/{app}/u/{major}.{minor}):
 * every device listening there takes it at once, so the groups alone cannot hold it back from
 * some of them. A gateway in front of the devices can (src/gateway/notice-gate.ts: it delivers
 * the notice only to devices their rollout released). A plan that puts Sming devices past the
 * first group is taken only when each of them is behind such a gateway (`gated`), and refused
 * otherwise, rather than updating devices outside the released groups.
 */
export function refuseSplitSharedNotices(devices: TargetDevice[], firstGroupSize: number, version: string, gated?: (device: string) => boolean): void {
  const line = version.split('.').slice(0, 2).join('.');
  const later = new Map<string, string[]>();
  devices.forEach((d, i) => {
    if (d.dialect !== 'sming' || i < firstGroupSize || gated?.(d.id)) return;
    const app = d.app ?? '';
    later.set(app, [...(later.get(app) ?? []), d.id]);
  });
  if (!later.size) return;
  const [app, ids] = [...later][0];
  throw new OtaError(
    'shared_notice_split',
    `Sming devices of app "${app}" share one retained notice (a/${app}/u/${line}): every device listening there takes the image at once, ` +
      `so groups cannot hold it back from ${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ` and ${ids.length - 3} more` : ''} ` +
      'in a later group. Connect them through an ota-gateway node of this repository (it withholds the notice until their group is released; ' +
      'each must have connected through it since Node-RED started), put every Sming device of the app in the first group, or give them a rollout of their own with one group.',
    'plan.groups',
  );
}
