// Makes the demo image that `npm start` serves: a JPEG-compressed, 256×256-tiled pyramidal
// TIFF drawn from SVG with sharp, so a fresh clone needs no image download. Equivalent to:
//   sharp(<svg>).resize(W, H).tiff({ tile: true, pyramid: true, compression: 'jpeg',
//     tileWidth: 256, tileHeight: 256, quality: 85 }).toFile('images/sample.tif')
// Run: node dist/scripts/make-sample.js [dir] [width] [height] [name]

import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

function sampleSvg(w: number, h: number): string {
  const shapes: string[] = [];
  // Deterministic pseudo-random circles so every build serves the same picture.
  let seed = 42;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 120; i++) {
    const r = 10 + rnd() * (w / 12);
    const hue = Math.floor(rnd() * 360);
    shapes.push(
      `<circle cx="${(rnd() * w).toFixed(1)}" cy="${(rnd() * h).toFixed(1)}" r="${r.toFixed(1)}" fill="hsl(${hue},70%,55%)" fill-opacity="0.6" stroke="#fff" stroke-width="${(w / 800).toFixed(1)}"/>`,
    );
  }
  const grid: string[] = [];
  for (let x = 0; x <= w; x += w / 16)
    grid.push(`<line x1="${x}" y1="0" x2="${x}" y2="${h}" stroke="#000" stroke-opacity="0.25" stroke-width="${w / 1000}"/>`);
  for (let y = 0; y <= h; y += h / 12)
    grid.push(`<line x1="0" y1="${y}" x2="${w}" y2="${y}" stroke="#000" stroke-opacity="0.25" stroke-width="${w / 1000}"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">
  <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
    <stop offset="0" stop-color="#1d3557"/><stop offset="0.5" stop-color="#457b9d"/><stop offset="1" stop-color="#f1faee"/>
  </linearGradient></defs>
  <rect width="100%" height="100%" fill="url(#g)"/>${grid.join('')}${shapes.join('')}
</svg>`;
}

/** Writes a pyramidal JPEG TIFF of width×height; draws at most 4000 px wide and resizes up. */
export async function makeSample(file: string, width: number, height: number): Promise<void> {
  const drawW = Math.min(width, 4000);
  const drawH = Math.round((drawW * height) / width);
  const drawn = await sharp(Buffer.from(sampleSvg(drawW, drawH)))
    .png()
    .toBuffer();
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await sharp(drawn, { limitInputPixels: false })
    .resize(width, height, { kernel: 'linear' })
    .tiff({ tile: true, pyramid: true, compression: 'jpeg', tileWidth: 256, tileHeight: 256, quality: 85 })
    .toFile(tmp);
  await fs.promises.rename(tmp, file);
}

async function main(): Promise<void> {
  const dir = process.argv[2] ?? 'images';
  const width = Number(process.argv[3] ?? 4000);
  const height = Number(process.argv[4] ?? 3000);
  const name = process.argv[5] ?? 'sample.tif';
  const file = path.join(dir, name);
  if (fs.existsSync(file)) return;
  process.stdout.write(`Making ${file} (${width}×${height} pyramidal JPEG TIFF)…\n`);
  await makeSample(file, width, height);
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  main().catch((err) => {
    process.stderr.write(`make-sample: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
