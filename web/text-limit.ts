/**
 * The server's message text limit, counted as it counts: user-perceived characters (extended
 * grapheme clusters, UAX #29, by `Intl.Segmenter`; docs/protocol.md#text-limits-and-names).
 * The server's `NATTER_MAX_TEXT_CHARS`, from /web/config.json (setMaxTextChars); 4,000, its
 * default, until the config is read. A text over it is refused by the server anyway, and stays
 * there, refused, with Edit, Retry and Cancel.
 */
export let MAX_TEXT_CHARS = 4000

/** From this many characters on, the composer shows its counter: 7/8 of the limit. */
export let COUNTER_FROM = 3500

/** Takes the server's limit (characters); anything but a positive integer is ignored. */
export function setMaxTextChars(n: unknown): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) return
  MAX_TEXT_CHARS = n
  COUNTER_FROM = Math.floor((n * 7) / 8)
}

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' })

/** The text's length in characters (grapheme clusters), as the server counts it. */
export function charactersIn(text: string): number {
  // A grapheme has at least one UTF-16 unit: text shorter than the counter's start needs no count.
  if (text.length < COUNTER_FROM) return text.length
  let n = 0
  for (const _ of segmenter.segment(text)) n++
  return n
}

/**
 * Whether the text has nothing to show: white space and invisible format characters only
 * (zero-width space, joiners, word joiner, byte order mark, soft hyphen), which would send an
 * empty-looking bubble.
 */
export function isBlank(text: string): boolean {
  return text.replace(/[\s\u00ad\u180e\u200b-\u200f\u2060-\u2064\ufeff]/g, '') === ''
}
