import { createHash, randomBytes } from 'crypto';

// The client id a device's broker connection carries. It must differ for every (device id,
// client id) pair, or one device could take over another's session: with `{deviceId}:{clientId}`
// device `site` with client id `42:site:42` became `site:42`'s session. The device id's length
// goes first, so where the device id ends is never in doubt.

/** Beyond this many bytes the id is hashed: AWS IoT and Azure stop at 128, MQTT 3.1.1 promises only 23. */
const MAX_UPSTREAM_CLIENT_ID_BYTES = 128;

export function upstreamClientId(deviceId: string, clientId: string): string {
  const id = `${deviceId.length}:${deviceId}:${clientId}`;
  if (Buffer.byteLength(id) <= MAX_UPSTREAM_CLIENT_ID_BYTES) return id;
  // Ids in full start with a digit, hashed ones with `h`: the two forms never meet.
  return `h${createHash('sha256').update(id).digest('base64url')}`;
}

/** A client id for a device that sent none (allowed only with a clean session). */
export function generatedClientId(): string {
  return `gw-${randomBytes(8).toString('hex')}`;
}
