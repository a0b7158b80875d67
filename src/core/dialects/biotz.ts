import type { Dialect } from './dialect';
import { fill, templatesOf, varsOf } from './topics';

// Biotz (seed 000): one retained notice per device with the firmware name and a download URL that
// expires after a week. Devices only subscribe; the protocol has no uplink.

const TOPICS = { update: 'biotz/1/0/{customer}/{device}/subscribe/firmware/update' };

export const biotz: Dialect = {
  name: 'biotz',
  defaultTopics: TOPICS,

  uplinkFilters() {
    return [];
  },

  notice(ctx, options) {
    const topic = fill(templatesOf('biotz', TOPICS, options).update, varsOf(ctx.device, options), `biotz notice for ${ctx.device.id}`);
    // The device compares "firmware-name" with what it runs: the tag names title and version.
    const payload = JSON.stringify({ 'firmware-name': ctx.firmware.tag, 'download-url': ctx.downloadUrl() });
    return [{ topic, payload, qos: 1, retain: true }];
  },

  clear(device, _firmware, options) {
    const topic = fill(templatesOf('biotz', TOPICS, options).update, varsOf(device, options), `biotz clear for ${device.id}`);
    return [{ topic, payload: '', qos: 1, retain: true }];
  },

  parseUplink() {
    return { kind: 'ignored', reason: 'Biotz devices send no firmware uplinks' };
  },
};
