import sharp from 'sharp'
import type { Row } from './report.ts'

const W = 970
const H = 520
const M = { left: 70, right: 270, top: 40, bottom: 60 }
const COLORS: Record<string, string> = {
  'relay QoS 1 mosquitto': '#2b7bb9',
  'relay QoS 1 aedes': '#e08a1e',
  'relay QoS 1 natter': '#2ca02c',
  'chat 1:1 (SQLite) natter': '#b8336a',
  'chat 1:1 (MongoDB: FerretDB) natter': '#7b4fb8',
}

/** p50 (dashed) and p99 (solid) latency against offered load, log scale, written as PNG. */
export async function renderChart(rows: Row[], path: string): Promise<void> {
  const series = new Map<string, Array<{ x: number; p50: number; p99: number }>>()
  for (const r of rows) {
    const key = `${r.scenario} ${r.target}`
    if (!(key in COLORS) || r.offered === 'max' || !Number.isFinite(r.p99)) continue
    const list = series.get(key) ?? []
    list.push({ x: Number(r.offered), p50: r.p50, p99: r.p99 })
    series.set(key, list)
  }
  const xs = [...series.values()].flat().map((p) => p.x)
  const ys = [...series.values()].flat().flatMap((p) => [p.p50, p.p99])
  const xMax = Math.max(1, ...xs) * 1.05
  const yMin = Math.max(0.01, Math.min(...ys, 1) / 2)
  const yMax = Math.max(...ys, 10) * 2
  const px = (x: number) => M.left + (x / xMax) * (W - M.left - M.right)
  const py = (y: number) =>
    H -
    M.bottom -
    ((Math.log10(Math.max(y, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) *
      (H - M.top - M.bottom)
  const parts: string[] = []
  for (let e = Math.floor(Math.log10(yMin)); e <= Math.ceil(Math.log10(yMax)); e++) {
    const y = 10 ** e
    if (y < yMin || y > yMax) continue
    parts.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${py(y)}" y2="${py(y)}" stroke="#ddd"/>`)
    parts.push(`<text x="${M.left - 8}" y="${py(y) + 4}" text-anchor="end" font-size="12">${y} ms</text>`)
  }
  for (let i = 0; i <= 4; i++) {
    const x = (xMax / 1.05) * (i / 4)
    parts.push(
      `<text x="${px(x)}" y="${H - M.bottom + 20}" text-anchor="middle" font-size="12">${Math.round(x)}</text>`,
    )
  }
  let legend = 0
  for (const [key, points] of series) {
    points.sort((a, b) => a.x - b.x)
    const color = COLORS[key] ?? '#333'
    const line = (f: (p: { p50: number; p99: number }) => number) =>
      points.map((p) => `${px(p.x)},${py(f(p))}`).join(' ')
    parts.push(`<polyline points="${line((p) => p.p99)}" fill="none" stroke="${color}" stroke-width="2.5"/>`)
    parts.push(
      `<polyline points="${line((p) => p.p50)}" fill="none" stroke="${color}" stroke-width="1.5" stroke-dasharray="5,4"/>`,
    )
    for (const p of points) parts.push(`<circle cx="${px(p.x)}" cy="${py(p.p99)}" r="3.5" fill="${color}"/>`)
    const ly = M.top + 20 + legend++ * 22
    parts.push(`<rect x="${W - M.right + 15}" y="${ly - 9}" width="14" height="4" fill="${color}"/>`)
    parts.push(`<text x="${W - M.right + 35}" y="${ly - 3}" font-size="12">${key}</text>`)
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="16">Latency against offered load (p99 solid, p50 dashed)</text>
<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="#333"/>
<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="#333"/>
<text x="${(M.left + W - M.right) / 2}" y="${H - 15}" text-anchor="middle" font-size="13">offered load, messages/s</text>
${parts.join('\n')}
</svg>`
  await sharp(Buffer.from(svg)).png().toFile(path)
}
