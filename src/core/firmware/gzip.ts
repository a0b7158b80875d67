// Whether an image is gzip (RFC 1952 magic 1f 8b): Tasmota names such an image .bin.gz
// (docs/tasmota.md), and its download route answers a .gz name only for one.

export function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}
