import type { Dialect } from '../dialects/dialect';
import type { DialectName } from '../types';

// Which dialect an uplink speaks, from its topic alone. Every pattern allows a prefix of whole
// levels in front (the ota-gateway's `{ns}/{deviceId}/` namespace, a bridge's mount point), and
// only topics that no other dialect uses are claimed: anything else needs the dialect set on
// the node. Biotz and Sming define no uplink at all.
const PATTERNS: ReadonlyArray<[RegExp, DialectName]> = [
  // ThingsBoard: telemetry (fw_state), attribute requests, chunk requests.
  [/(^|\/)v1\/devices\/me\/(telemetry|attributes)(\/.*)?$/, 'thingsboard'],
  [/(^|\/)v2\/fw\/request\/[^/]+\/chunk\/[^/]+$/, 'thingsboard'],
  // Tencent: $ota/report/{product}/{device}.
  [/(^|\/)\$ota\/report\/[^/]+\/[^/]+$/, 'tencent'],
  // TagoIO: the device posts its variables (firmware_request) to tago/data/post.
  [/(^|\/)tago\/data\/post$/, 'tago'],
  // Tasmota: stat/{topic}/RESULT, UPGRADE, STATUS2 and tele/{topic}/INFO1, LWT (FullTopic
  // %prefix%/%topic%/), from the first level only: never namespaced, so a namespaced device's
  // ota/{id}/stat/plug-1/UPGRADE cannot speak for plug-1.
  [/^stat\/[^/]+\/(RESULT|UPGRADE|STATUS2)$/, 'tasmota'],
  [/^tele\/[^/]+\/(INFO1|LWT)$/, 'tasmota'],
];

export function detectDialect(topic: unknown): DialectName | undefined {
  if (typeof topic !== 'string' || topic === '') return undefined;
  for (const [pattern, name] of PATTERNS) if (pattern.test(topic)) return name;
  return undefined;
}

type DialectLookup = (name: DialectName) => Dialect | undefined;
let lookup: DialectLookup | null | undefined;

/**
 * The dialect module for a name, or undefined when the dialect modules are not available.
 * Loaded lazily so the rollout code builds and runs (chunk-server and download events) before
 * and without src/core/dialects/index.ts.
 */
export function dialectFor(name: DialectName): Dialect | undefined {
  if (lookup === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require('../dialects/index') as { dialectFor?: DialectLookup };
      lookup = typeof mod.dialectFor === 'function' ? mod.dialectFor : null;
    } catch {
      lookup = null;
    }
  }
  if (!lookup) return undefined;
  try {
    return lookup(name);
  } catch {
    return undefined;
  }
}
