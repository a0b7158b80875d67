// Reads title and version from an ESP-IDF application image, so that a user can drop a
// build/<project>.bin into the store without typing anything.
//
// Layout (ESP-IDF esp_app_format.h): a 24-byte esp_image_header_t whose first byte is the magic
// 0xE9, an 8-byte header of the first segment, then esp_app_desc_t at offset 0x20:
//   +0 magic_word 0xABCD5432 (little-endian), +4 secure_version, +8 reserved[2],
//   +16 version[32], +48 project_name[32], +80 time[16], +96 date[16], +112 idf_ver[32].

export const ESP_IMAGE_MAGIC = 0xe9;
export const ESP_APP_DESC_MAGIC = 0xabcd5432;
const DESC_OFFSET = 0x20;
const DESC_MIN_LENGTH = 144;

export interface EspAppDescription {
  projectName: string;
  version: string;
  secureVersion: number;
  compiledAt: string;
  idfVersion: string;
}

function cString(buf: Buffer, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8').trim();
}

/** The image's app description, or null when the image is not an ESP-IDF application image. */
export function readEspAppDescription(image: Buffer): EspAppDescription | null {
  if (image.length < DESC_OFFSET + DESC_MIN_LENGTH) return null;
  if (image[0] !== ESP_IMAGE_MAGIC) return null;
  if (image.readUInt32LE(DESC_OFFSET) !== ESP_APP_DESC_MAGIC) return null;
  const d = DESC_OFFSET;
  const date = cString(image, d + 96, 16);
  const time = cString(image, d + 80, 16);
  return {
    secureVersion: image.readUInt32LE(d + 4),
    version: cString(image, d + 16, 32),
    projectName: cString(image, d + 48, 32),
    compiledAt: [date, time].filter(Boolean).join(' '),
    idfVersion: cString(image, d + 112, 32),
  };
}
