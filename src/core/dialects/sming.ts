import * as semver from 'semver';
import { OtaError } from '../types';
import type { Dialect, DialectOptions, FirmwareRef } from './dialect';
import { fill, templatesOf, varsOf } from './topics';

// Sming's "OTA over MQTT" sample (seed 001): the image itself, one retained QoS 2 message on the
// topic of its major.minor, prefixed with the patch version. No uplink.

const TOPICS = { update: 'a/{app}/u/{major}.{minor}' };

/** MQTT's own ceiling for one message (remaining length 268435455 minus the fixed parts). */
export const MQTT_MAX_MESSAGE = 268435455;

function topicOf(device: Parameters<Dialect['clear']>[0], firmware: FirmwareRef, options: DialectOptions | undefined): string {
  const t = templatesOf('sming', TOPICS, options).update;
  return (options?.smingPrefix ?? '') + fill(t, varsOf(device, options, firmware), `sming topic for ${device.id}`);
}

/**
 * The patch version header. Sming's decoder adds 7-bit groups without shifting, so a varint above
 * 127 would be read as a different number: refuse it rather than loop a device.
 */
export function patchHeader(version: string, encoding: 'byte' | 'varint' = 'byte'): Buffer {
  const parsed = semver.parse(version);
  if (!parsed) throw new OtaError('bad_version', `"${version}" is not a semantic version`, 'version');
  const patch = parsed.patch;
  if (encoding === 'varint' && patch > 127) {
    throw new OtaError(
      'patch_too_large',
      `patch version ${patch} cannot be sent in varint mode: Sming's device decoder reads varints above 127 wrongly (it adds the 7-bit groups without shifting them), so the device would see another version; use patch 0-127, or the one-byte encoding (patch 0-255)`,
      'version',
    );
  }
  if (patch > 255) {
    throw new OtaError('patch_too_large', `patch version ${patch} does not fit the one-byte header Sming devices read (0-255): start a new minor version`, 'version');
  }
  return Buffer.from([patch]);
}

export const sming: Dialect = {
  name: 'sming',
  defaultTopics: TOPICS,

  uplinkFilters() {
    return [];
  },

  notice(ctx, options) {
    if (!ctx.image) throw new OtaError('no_image', 'sming notice needs the image bytes', 'firmware');
    const header = patchHeader(ctx.firmware.version, options?.smingPatchEncoding);
    const payload = Buffer.concat([header, ctx.image]);
    const limit = options?.maxMessageBytes ?? MQTT_MAX_MESSAGE;
    if (payload.length > MQTT_MAX_MESSAGE) {
      throw new OtaError('image_too_large', `the Sming notice would be ${payload.length} bytes, over MQTT's limit of ${MQTT_MAX_MESSAGE}`, 'firmware');
    }
    if (payload.length > limit) {
      ctx.warn?.(`the Sming notice for ${ctx.firmware.title} ${ctx.firmware.version} is ${payload.length} bytes, over the configured broker message limit of ${limit}: the broker may drop it (mosquitto: message_size_limit)`);
    }
    return [{ topic: topicOf(ctx.device, ctx.firmware, options), payload, qos: 2, retain: true }];
  },

  clear(device, firmware, options) {
    if (!firmware) return [];
    return [{ topic: topicOf(device, firmware, options), payload: '', qos: 2, retain: true }];
  },

  parseUplink() {
    return { kind: 'ignored', reason: 'Sming devices send no firmware uplinks' };
  },
};
