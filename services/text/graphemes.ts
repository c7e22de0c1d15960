import { z } from 'zod'

/**
 * Natter's one definition of a "character": a user-perceived character, that is an extended
 * grapheme cluster of Unicode UAX #29 (https://unicode.org/reports/tr29/), as the platform's
 * `Intl.Segmenter` (ICU) finds them. "😀", "é" written as e + U+0301, "👨‍👩‍👧‍👦" and "\r\n" are each
 * one character. Every text limit of the protocol counts these, and every error message about a
 * length says how many of them the text has.
 */

/**
 * Most code points one character may have. A grapheme cluster has no length limit of its own
 * (a letter followed by 10,000 combining marks is one), so without this a text within its
 * character limit could still be unbounded in bytes. Real text stays far below it: the longest
 * emoji ZWJ sequences have 10–11 code points, Indic conjuncts and pointed Hebrew under 12, and
 * UAX #15's Stream-Safe Text Format already calls more than 30 combining marks in a row
 * degenerate. With it, N characters are at most N × 32 code points, N × 128 bytes of UTF-8.
 */
export const MAX_CODE_POINTS_PER_CHARACTER = 32

const segmenter = new Intl.Segmenter('en', { granularity: 'grapheme' })

// What can join a neighbour into one cluster (UAX #29 table 2): marks (Extend, SpacingMark), ZWNJ
// and ZWJ, the format characters that are Prepend (U+0600–U+0605, U+06DD, U+070F, U+0890, U+0891,
// U+08E2), conjoining Hangul jamo (L, V, T), the few letters that are SpacingMark, Extend or
// Prepend (U+0D4E, U+0E33, U+0EB3, U+FF9E, U+FF9F), and every astral code point (emoji, regional
// indicators, astral marks). Every other code point is a cluster of its own, but CR LF (rule GB3):
// text made of them (Latin, Greek, Cyrillic, CJK, kana, Hangul syllables, unpointed Arabic and
// Hebrew…) is counted without the segmenter, and so is what comes before the first and after the
// last joining code point of other text. A test checks every BMP code point outside this set,
// and mixed text, against the segmenter.
const JOINING =
  // biome-ignore lint/suspicious/noMisleadingCharacterClass: a class of single code points, ZWJ and marks among them
  /[\p{M}\u200C\u200D\u0600-\u0605\u06DD\u070F\u0890\u0891\u08E2\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF\u0D4E\u0E33\u0EB3\uFF9E\uFF9F\uD800-\uDFFF\u{10000}-\u{10FFFF}]/u
// None of JOINING, tested faster (no property classes).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are characters too
const LATIN = /^[\u0000-\u02ff]*$/
const CRLF = /\r\n/g

/** Code points of a string; a lone surrogate counts as one. */
function codePoints(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    // A high surrogate followed by a low one is one code point.
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) i++
    }
    n++
  }
  return n
}

/** Whether text is counted without the segmenter: each of its code points is one character, but CR LF. */
export const eachCodePointIsACharacter = (text: string): boolean => LATIN.test(text) || !JOINING.test(text)

const crlfPairs = (text: string) => text.match(CRLF)?.length ?? 0
const isCrOrLf = (unit: number) => unit === 0x0a || unit === 0x0d
/** Whether the UTF-16 unit at i is (part of) a joining code point; every surrogate is. */
const joiningAt = (text: string, i: number) => text.charCodeAt(i) >= 0x300 && JOINING.test(text.charAt(i))

type Scan =
  | { kind: 'counted'; count: number; exact: boolean }
  | { kind: 'oversized_character'; position: number; codePoints: number }

/**
 * Counts the clusters of text, stopping once there are more than stopAt, and finds the first
 * cluster of more than MAX_CODE_POINTS_PER_CHARACTER code points.
 */
function scan(text: string, stopAt: number): Scan {
  if (LATIN.test(text)) return { kind: 'counted', count: text.length - crlfPairs(text), exact: true }
  const first = JOINING.exec(text)
  if (!first) return { kind: 'counted', count: text.length - crlfPairs(text), exact: true }
  // Code points outside JOINING never join each other (CR LF aside), so the clusters holding
  // joining code points reach at most one code point (one UTF-16 unit) beyond the first and the
  // last of them, never a CR or LF (rules GB4, GB5). Only that window needs the segmenter.
  let from = first.index
  let to = text.length
  while (to > from && !joiningAt(text, to - 1)) to--
  if (from > 0 && !isCrOrLf(text.charCodeAt(from - 1))) from--
  if (to < text.length && !isCrOrLf(text.charCodeAt(to))) to++
  const before = text.slice(0, from)
  const outside = from - crlfPairs(before) + (text.length - to) - crlfPairs(text.slice(to))
  let count = outside
  for (const { segment } of segmenter.segment(text.slice(from, to))) {
    count++
    // A UTF-16 unit is at most one code point: only a long segment needs counting.
    if (segment.length > MAX_CODE_POINTS_PER_CHARACTER) {
      const n = codePoints(segment)
      if (n > MAX_CODE_POINTS_PER_CHARACTER) {
        const position = count - outside + from - crlfPairs(before)
        return { kind: 'oversized_character', position, codePoints: n }
      }
    }
    if (count > stopAt) return { kind: 'counted', count: stopAt + 1, exact: false }
  }
  return { kind: 'counted', count, exact: true }
}

/** The number of user-perceived characters (extended grapheme clusters) in text. */
export function countCharacters(text: string): number {
  const s = scan(text, Number.POSITIVE_INFINITY)
  // Without a stop, a count is always exact; an oversized character is still one character.
  if (s.kind === 'counted') return s.count
  let n = 0
  for (const _ of segmenter.segment(text)) n++
  return n
}

/**
 * The longest start of text that ends between two characters and has at most maxUnits UTF-16
 * units: for previews that must stay small (push notification bodies) and never end inside an
 * emoji, a surrogate pair or a letter with its marks.
 */
export function wholeCharactersWithin(text: string, maxUnits: number): string {
  if (text.length <= maxUnits) return text
  let end = 0
  for (const { index, segment } of segmenter.segment(text)) {
    if (index + segment.length > maxUnits) break
    end = index + segment.length
  }
  return text.slice(0, end)
}

/** Bounds on a text, in characters. */
export interface CharacterLimits {
  min?: number | undefined
  max?: number | undefined
}

/** What is wrong with a text's length, as a fragment that follows its subject ("text has…"). */
export type CharacterProblem =
  | { kind: 'too_many'; count: number; max: number; exact: boolean }
  | { kind: 'too_few'; count: number; min: number }
  | { kind: 'oversized_character'; position: number; codePoints: number }

/**
 * Checks text against limits in characters, and each character against
 * MAX_CODE_POINTS_PER_CHARACTER. Counting stops past twice the maximum (the count is then a lower
 * bound, `exact: false`), so that a megabyte of text costs no more than a text twice the limit.
 * @returns undefined when the text is within its limits
 */
export function checkCharacters(text: string, limits: CharacterLimits): CharacterProblem | undefined {
  const { min = 0, max } = limits
  const s = scan(text, max === undefined ? Number.POSITIVE_INFINITY : 2 * max)
  if (s.kind === 'oversized_character') return s
  if (max !== undefined && s.count > max) return { kind: 'too_many', count: s.count, max, exact: s.exact }
  if (s.count < min) return { kind: 'too_few', count: s.count, min }
  return undefined
}

/**
 * An error message for a problem, after its subject: "has 4001 characters; the limit is 4000".
 * Callers put the subject in front ("text has…") or a field path ("params.name: has…").
 */
export function describeCharacterProblem(p: CharacterProblem): string {
  switch (p.kind) {
    case 'too_many':
      return `has ${p.exact ? p.count : `more than ${p.count - 1}`} characters; the limit is ${p.max}`
    case 'too_few':
      return p.count === 0
        ? `is empty; at least ${p.min} ${p.min === 1 ? 'character is' : 'characters are'} needed`
        : `has ${p.count} ${p.count === 1 ? 'character' : 'characters'}; at least ${p.min} are needed`
    case 'oversized_character':
      return `has a character of ${p.codePoints} code points (character ${p.position}); one character may have at most ${MAX_CODE_POINTS_PER_CHARACTER}`
  }
}

/** How a range of characters reads in the docs and schemas: "1–64 characters". */
export function describeCharacterRange(limits: CharacterLimits): string {
  const { min = 0, max } = limits
  const range = max === undefined ? `at least ${min}` : min > 0 ? `${min}–${max}` : `at most ${max}`
  return `${range} characters (user-perceived: grapheme clusters, UAX #29)`
}

/**
 * A zod string of min–max characters (see countCharacters), each at most
 * MAX_CODE_POINTS_PER_CHARACTER code points. Its error messages count characters: "has 65
 * characters; the limit is 64". The JSON Schema carries the rule in its description (JSON Schema's
 * minLength/maxLength count code points, another unit).
 */
export function characters(limits: CharacterLimits, description?: string) {
  const rule = describeCharacterRange(limits)
  return z
    .string()
    .check((ctx) => {
      const problem = checkCharacters(ctx.value, limits)
      if (problem)
        ctx.issues.push({ code: 'custom', message: describeCharacterProblem(problem), input: ctx.value })
    })
    .describe(description ? `${description}; ${rule}` : `${rule[0]?.toUpperCase()}${rule.slice(1)}`)
}
