import { searchTerms } from '../services/messages/search-terms.ts'

/**
 * CPU per searchTerms call, in µs, for typical chat messages in several scripts: what the SQLite
 * writer thread spends per stored message on its search terms (and MongoDB's append path).
 * Beside it, version 1 (regex runs of letters and digits, no segmentation or folding) for
 * comparison.
 *
 *   sh scripts/node.sh bench/search-terms.ts [--n=200000]
 */

const n = Number(process.argv.find((a) => a.startsWith('--n='))?.slice(4) ?? 200_000)

/** searchTerms as version 1 had it: what the figures are compared with. */
function version1(text: string | null): string[] {
  if (!text) return []
  const words =
    text
      .toLocaleLowerCase('en-US')
      .normalize('NFKC')
      .match(/[\p{L}\p{N}]+/gu) ?? []
  return [...new Set(words)].slice(0, 256)
}

const texts: Record<string, string> = {
  'ASCII, 61 bytes': 'Hey, are we still on for lunch at 12:30? Bring the slides pls',
  'German, 65 bytes': 'Müller sagt, die Straße ist gesperrt; wir treffen uns im Café.',
  'Chinese, 25 characters': '我家在上海东边，明天下午三点我们在公司门口见面吧。',
  'Japanese, 27 characters': '病院は機能していないので、明日の朝もう一度電話します。',
  'Thai, 33 characters': 'ฉันดื่มน้ำเย็นทุกวันและทำงานหนักมาก',
  'Arabic, 34 characters': 'مَرْحَبًا يا صديقي، سنلتقي غدًا في المقهى',
}

/**
 * µs of CPU per call, over n calls on 1,000 distinct copies of the text (a number at the end),
 * each parsed from JSON as a message's text is: V8 keeps the results of a global regex match on
 * a string it saw just before, which one string used over and over would measure instead.
 */
function measure(f: (t: string) => unknown, text: string): number {
  const variants = Array.from(
    { length: 1000 },
    (_, i) => JSON.parse(JSON.stringify(`${text} ${i}`)) as string,
  )
  for (let i = 0; i < 20_000; i++) f(variants[i % 1000] as string)
  const start = process.cpuUsage()
  for (let i = 0; i < n; i++) f(variants[i % 1000] as string)
  const used = process.cpuUsage(start)
  return (used.user + used.system) / n
}

for (const [name, text] of Object.entries(texts)) {
  const now = measure(searchTerms, text)
  const before = measure(version1, text)
  process.stdout.write(
    `${name.padEnd(24)} ${now.toFixed(1).padStart(5)} µs (version 1: ${before.toFixed(1)} µs)  ${searchTerms(text).join(' ')}\n`,
  )
}
