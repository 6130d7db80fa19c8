// What the phone can tell about a photo before queueing it: is it an image (by its bytes, not its name), is it
// within the upload size, and does its header declare more pixels than the server accepts (a decompression bomb
// is refused here without decoding it). Photos are sent as taken (originals), so the server's EXIF check of
// capture time and place stays meaningful.
import { errorMessage, t } from "./i18n.js";

const HEAD = 512 * 1024;

function u16(b, i, le) { return le ? b[i] | (b[i + 1] << 8) : (b[i] << 8) | b[i + 1]; }
function u32(b, i, le) { return le ? (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) + b[i + 3] * 2 ** 24 : b[i] * 2 ** 24 + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]); }

/** {format, width, height} from the first bytes, or null when the bytes are no image we know. */
export function sniff(b) {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) { i++; continue; }
      const m = b[i + 1];
      if (m === 0xff) { i++; continue; }
      if (m === 0xd8 || m === 0x01 || (m >= 0xd0 && m <= 0xd7)) { i += 2; continue; }
      const len = u16(b, i + 2, false);
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
        return { format: "jpeg", height: u16(b, i + 5, false), width: u16(b, i + 7, false) };
      }
      i += 2 + len;
    }
    return { format: "jpeg", width: 0, height: 0 }; // header beyond what we read: the server decides
  }
  if (b.length >= 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) {
    return { format: "png", width: u32(b, 16, false), height: u32(b, 20, false) };
  }
  const txt = (i, n) => String.fromCharCode(...b.subarray(i, i + n));
  if (b.length >= 30 && txt(0, 4) === "RIFF" && txt(8, 4) === "WEBP") {
    const kind = txt(12, 4);
    if (kind === "VP8X") return { format: "webp", width: 1 + (b[24] | (b[25] << 8) | (b[26] << 16)), height: 1 + (b[27] | (b[28] << 8) | (b[29] << 16)) };
    if (kind === "VP8L") { const v = u32(b, 21, true); return { format: "webp", width: 1 + (v & 0x3fff), height: 1 + ((v >> 14) & 0x3fff) }; }
    return { format: "webp", width: u16(b, 26, true) & 0x3fff, height: u16(b, 28, true) & 0x3fff };
  }
  if (b.length >= 12 && txt(4, 4) === "ftyp" && /^(heic|heix|hevc|mif1|msf1|heim|heis)$/.test(txt(8, 4))) {
    return { format: "heic", width: 0, height: 0 };
  }
  return null;
}

/** Check one chosen file; resolves to an error text, or null when it may be queued. */
export async function checkPhoto(file, config) {
  const name = file.name || "photo";
  const maxBytes = config?.max_upload_bytes ?? 15 * 1024 * 1024;
  const maxPx = config?.max_photo_pixels ?? 50_000_000;
  // The same codes and catalogue messages the server would answer with, plus the file's name and numbers.
  const refuse = (code, extra) => t("photo.file", { n: name, m: errorMessage(code) + extra });
  if (file.size > maxBytes) {
    return refuse("photo.too_large", t("photo.size", { s: (file.size / 1048576).toFixed(1), l: (maxBytes / 1048576).toFixed(0) }));
  }
  const head = new Uint8Array(await file.slice(0, HEAD).arrayBuffer());
  const info = sniff(head);
  if (!info) return refuse("photo.unsupported_type", "");
  if (info.width * info.height > maxPx) {
    return refuse("photo.too_many_pixels", t("photo.pixels", { p: Math.round(info.width * info.height / 1e4), l: Math.round(maxPx / 1e4) }));
  }
  return null;
}
