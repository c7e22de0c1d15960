/** A rate limit: `points` per fixed window of `seconds`. */
export interface Rate {
  points: number
  seconds: number
}

const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const

/**
 * Reads a rate setting: "30/10s" (30 per 10 seconds), "100/1m", "1000/1h"; "off" is null (no
 * limit). The settings schema (config/schema.ts) has already checked the shape; anything else
 * throws.
 */
export function parseRate(text: string): Rate | null {
  const s = text.trim()
  if (s === 'off') return null
  const m = /^([1-9]\d*)\/([1-9]\d*)([smh])$/.exec(s)
  if (!m) throw new Error(`not a rate: ${JSON.stringify(text)} (expected N/<window> such as 30/10s, or off)`)
  return { points: Number(m[1]), seconds: Number(m[2]) * UNIT_SECONDS[m[3] as keyof typeof UNIT_SECONDS] }
}
