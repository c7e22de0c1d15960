/** Percentiles of a sample, nearest-rank. */
export function percentiles(samples: number[], ps: number[]): number[] {
  if (samples.length === 0) return ps.map(() => Number.NaN)
  const sorted = Float64Array.from(samples).sort()
  return ps.map(
    (p) =>
      sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number,
  )
}
