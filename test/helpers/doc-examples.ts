/**
 * The shell examples of a Markdown page, as a test runs them: every ```sh block in order, each
 * with the ```json block that follows it (if any) as the output it documents.
 */

export interface ShellExample {
  /** 1-based line of the ```sh fence in the page. */
  line: number
  script: string
  /** The documented output: JSON values, one after another; null when the page shows none. */
  expected: string | null
}

/** Every ```sh block of a Markdown text, with the ```json block right after it. */
export function shellExamples(markdown: string): ShellExample[] {
  const lines = markdown.split('\n')
  const out: ShellExample[] = []
  const fenced = (from: number): { body: string; end: number } => {
    let end = from + 1
    while (end < lines.length && !lines[end]?.startsWith('```')) end++
    return { body: lines.slice(from + 1, end).join('\n'), end }
  }
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== '```sh') continue
    const sh = fenced(i)
    let next = sh.end + 1
    while (next < lines.length && lines[next]?.trim() === '') next++
    const json = lines[next]?.trim() === '```json' ? fenced(next) : null
    out.push({ line: i + 1, script: sh.body, expected: json?.body ?? null })
    i = json ? json.end : sh.end
  }
  return out
}

/**
 * The top-level JSON values of a text written one after another (`{…}{…}`, or one per line, or
 * pretty-printed): what a few curl calls print. Throws on text that is not such a sequence.
 */
export function jsonValues(text: string): unknown[] {
  const values: unknown[] = []
  let i = 0
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i] ?? '')) i++
    if (i >= text.length) break
    const start = i
    let depth = 0
    let inString = false
    for (; i < text.length; i++) {
      const c = text[i]
      if (inString) {
        if (c === '\\') i++
        else if (c === '"') inString = false
      } else if (c === '"') inString = true
      else if (c === '{' || c === '[') depth++
      else if (c === '}' || c === ']') {
        depth--
        if (depth === 0) {
          i++
          break
        }
      } else if (depth === 0 && /\s/.test(c ?? '')) break
    }
    values.push(JSON.parse(text.slice(start, i)))
  }
  return values
}

/**
 * Where `actual` differs from the documented `expected` value, as a list of paths with what
 * was wanted; empty when it matches. The documentation's placeholders:
 * - a string with `…` matches any string with the rest around it (`"d_…"`), `"…"` any string;
 * - a number matches any number (ids and times differ from run to run), a boolean or null only
 *   itself;
 * - an object matches an object with exactly its keys, unless it has the key `"…"`: then more
 *   keys may follow;
 * - an array matches an array of as many elements, unless its last element is `"…"`: then at
 *   least the ones before it.
 */
export function shapeDifferences(actual: unknown, expected: unknown, path = '$'): string[] {
  if (typeof expected === 'string') {
    if (typeof actual !== 'string') return [`${path}: a string, not ${JSON.stringify(actual)}`]
    if (!expected.includes('…')) return actual === expected ? [] : [`${path}: "${expected}", not "${actual}"`]
    const pattern = expected
      .split('…')
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^]*')
    return new RegExp(`^${pattern}$`).test(actual) ? [] : [`${path}: like "${expected}", not "${actual}"`]
  }
  if (typeof expected === 'number') {
    return typeof actual === 'number' ? [] : [`${path}: a number, not ${JSON.stringify(actual)}`]
  }
  if (expected === null || typeof expected === 'boolean') {
    return actual === expected ? [] : [`${path}: ${expected}, not ${JSON.stringify(actual)}`]
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return [`${path}: an array, not ${JSON.stringify(actual)}`]
    const open = expected.at(-1) === '…'
    const items = open ? expected.slice(0, -1) : expected
    if (open ? actual.length < items.length : actual.length !== items.length) {
      return [`${path}: ${open ? 'at least ' : ''}${items.length} elements, not ${actual.length}`]
    }
    return items.flatMap((e, i) => shapeDifferences(actual[i], e, `${path}[${i}]`))
  }
  if (typeof expected === 'object') {
    if (typeof actual !== 'object' || actual === null || Array.isArray(actual)) {
      return [`${path}: an object, not ${JSON.stringify(actual)}`]
    }
    const want = expected as Record<string, unknown>
    const got = actual as Record<string, unknown>
    const open = '…' in want
    const diffs: string[] = []
    for (const key of Object.keys(want)) {
      if (key === '…') continue
      if (!(key in got)) diffs.push(`${path}.${key}: missing`)
      else diffs.push(...shapeDifferences(got[key], want[key], `${path}.${key}`))
    }
    if (!open)
      for (const key of Object.keys(got)) if (!(key in want)) diffs.push(`${path}.${key}: not documented`)
    return diffs
  }
  return [`${path}: cannot compare with ${JSON.stringify(expected)}`]
}
