import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'crypto';

// Device secrets the server must *use*, not only compare. A token is kept as an HMAC (like a
// password hash: checking one needs only the hash). A Tencent device secret is the key of an HMAC
// the device computes over a fresh username at every connection, so the server has to compute the
// same HMAC: it needs the key itself. It is kept encrypted (AES-256-GCM) under a key derived from
// the repository secret, with the device id as associated data (a sealed value copied onto another
// device record does not open). A copy of devices.json alone then gives nothing; whoever also
// holds the repository secret could sign download URLs too, so nothing new is lost. The API never
// returns it, sealed or not.

const FORMAT = 'v1';

function keyOf(repositorySecret: Buffer): Buffer {
  return createHmac('sha256', repositorySecret).update('mqtt-ota sealed device secret v1').digest();
}

export function seal(repositorySecret: Buffer, deviceId: string, plain: Buffer): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyOf(repositorySecret), iv);
  cipher.setAAD(Buffer.from(deviceId, 'utf8'));
  const data = Buffer.concat([cipher.update(plain), cipher.final()]);
  return [FORMAT, iv.toString('base64'), cipher.getAuthTag().toString('base64'), data.toString('base64')].join(':');
}

/** The plain secret, or undefined when the value was not sealed by this repository for this device. */
export function unseal(repositorySecret: Buffer, deviceId: string, sealed: string): Buffer | undefined {
  const [format, iv, tag, data] = sealed.split(':');
  if (format !== FORMAT || !iv || !tag || data === undefined) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', keyOf(repositorySecret), Buffer.from(iv, 'base64'));
    decipher.setAAD(Buffer.from(deviceId, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64')), decipher.final()]);
  } catch {
    return undefined;
  }
}
