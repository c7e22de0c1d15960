import { z } from 'zod'
import { checkCharacters, describeCharacterProblem, describeCharacterRange } from './graphemes.ts'

/**
 * Names people see (chat names, media file names, and any display field): text that must show
 * what it is. Refused, each named as U+XXXX in the error:
 * - control characters (Cc), line and paragraph separators: a name is one line;
 * - bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069): they make
 *   text show in another order than it is stored ("invoice‮fdp.exe" shows as "invoiceexe.pdf");
 * - other format characters (Cf: U+200B, U+2060, U+FEFF, U+00AD…), except where a script or an
 *   emoji needs them: ZWJ and ZWNJ after a virama and ZWNJ between letters of a joining script
 *   (RFC 5892 appendix A.1/A.2, CONTEXTJ), ZWJ inside an emoji ZWJ sequence and tag characters
 *   inside an emoji tag sequence (UTS #51), U+180E between Mongolian letters;
 * - the Hangul fillers U+3164 and U+FFA0, lone surrogates, noncharacters, reserved invisible code
 *   points;
 * - names that show as blank: nothing left once whitespace, default-ignorable code points,
 *   combining marks and U+2800 BRAILLE PATTERN BLANK are taken away.
 * Accepted names are normalised to NFC and trimmed (whitespace and U+2800).
 */

// Canonical_Combining_Class=Virama (9), Unicode 16.0 (DerivedCombiningClass.txt): JS regular
// expressions have no property for it.
const VIRAMA =
  /[\u094D\u09CD\u0A4D\u0ACD\u0B4D\u0BCD\u0C4D\u0CCD\u0D3B\u0D3C\u0D4D\u0DCA\u0E3A\u0EBA\u0F84\u1039\u103A\u1714\u1715\u1734\u17D2\u1A60\u1B44\u1BAA\u1BAB\u1BF2\u1BF3\u2D7F\uA806\uA82C\uA8C4\uA953\uA9C0\uAAF6\uABED\u{10A3F}\u{11046}\u{11070}\u{1107F}\u{110B9}\u{11133}\u{11134}\u{111C0}\u{11235}\u{112EA}\u{1134D}\u{113CE}-\u{113D0}\u{11442}\u{114C2}\u{115BF}\u{1163F}\u{116B6}\u{1172B}\u{11839}\u{1193D}\u{1193E}\u{119E0}\u{11A34}\u{11A47}\u{11A99}\u{11C3F}\u{11D44}\u{11D45}\u{11D97}\u{11F41}\u{11F42}\u{1612F}]/u
// RFC 5892 A.1 wants Joining_Type L or D before a ZWNJ and R or D after it, skipping transparent
// (T) marks; JS has no Joining_Type property, so the letters of the scripts that join stand in.
const JOINING_LETTER =
  /[\p{Script=Arabic}\p{Script=Syriac}\p{Script=Nko}\p{Script=Mongolian}\p{Script=Phags_Pa}\p{Script=Mandaic}\p{Script=Manichaean}\p{Script=Psalter_Pahlavi}\p{Script=Hanifi_Rohingya}\p{Script=Sogdian}\p{Script=Old_Uyghur}\p{Script=Chorasmian}\p{Script=Adlam}]/u
const LETTER = /\p{L}/u
const TRANSPARENT = /[\p{Mn}\p{Me}]/u
const MONGOLIAN_LETTER = /[\u1820-\u1878]/u
// What an emoji ZWJ element ends with before the ZWJ (UTS #51 ED-15a, ED-16): the pictograph,
// a skin tone modifier, or VS16.
// biome-ignore lint/suspicious/noMisleadingCharacterClass: a class of single code points, VS16 among them
const EMOJI_END = /[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F]/u
const PICTOGRAPH = /\p{Extended_Pictographic}/u
// UTS #51 ED-14c: an emoji tag sequence; only 🏴 (U+1F3F4) has RGI ones (England, Scotland, Wales).
const TAG_SEQUENCE = /\u{1F3F4}[\u{E0020}-\u{E007E}]+\u{E007F}/gu
const TAG = /[\u{E0020}-\u{E007F}]/u

const BIDI = new Set([
  0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069,
])
const FILLERS = new Set([0x3164, 0xffa0])
const NAMES: Record<number, string> = {
  173: 'SOFT HYPHEN',
  1564: 'ARABIC LETTER MARK',
  6158: 'MONGOLIAN VOWEL SEPARATOR',
  8203: 'ZERO WIDTH SPACE',
  8204: 'ZERO WIDTH NON-JOINER',
  8205: 'ZERO WIDTH JOINER',
  8206: 'LEFT-TO-RIGHT MARK',
  8207: 'RIGHT-TO-LEFT MARK',
  8232: 'LINE SEPARATOR',
  8233: 'PARAGRAPH SEPARATOR',
  8234: 'LEFT-TO-RIGHT EMBEDDING',
  8235: 'RIGHT-TO-LEFT EMBEDDING',
  8236: 'POP DIRECTIONAL FORMATTING',
  8237: 'LEFT-TO-RIGHT OVERRIDE',
  8238: 'RIGHT-TO-LEFT OVERRIDE',
  8288: 'WORD JOINER',
  8294: 'LEFT-TO-RIGHT ISOLATE',
  8295: 'RIGHT-TO-LEFT ISOLATE',
  8296: 'FIRST STRONG ISOLATE',
  8297: 'POP DIRECTIONAL ISOLATE',
  10240: 'BRAILLE PATTERN BLANK',
  12644: 'HANGUL FILLER',
  65279: 'ZERO WIDTH NO-BREAK SPACE',
  65440: 'HALFWIDTH HANGUL FILLER',
}

/** "U+202E RIGHT-TO-LEFT OVERRIDE", or "U+0007" for a character without a name here. */
export function codePointLabel(cp: number): string {
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`
  const name = NAMES[cp]
  return name ? `${hex} ${name}` : hex
}

const is = (re: RegExp, cp: number | undefined) => cp !== undefined && re.test(String.fromCodePoint(cp))

/** The code point before i, skipping transparent marks (RFC 5892's (Joining_Type:T)*). */
function before(cps: number[], i: number, skip: RegExp | null): number | undefined {
  let j = i - 1
  while (skip && j >= 0 && is(skip, cps[j])) j--
  return cps[j]
}
function after(cps: number[], i: number, skip: RegExp | null): number | undefined {
  let j = i + 1
  while (skip && j < cps.length && is(skip, cps[j])) j++
  return cps[j]
}

/** Why the code point at i may not be in a name (a phrase that follows the code point's label), or undefined when it may. */
function refusal(cps: number[], i: number, inTagSequence: boolean): string | undefined {
  const cp = cps[i] as number
  const ch = String.fromCodePoint(cp)
  if (cp >= 0xd800 && cp <= 0xdfff) return 'is half of a UTF-16 surrogate pair, not a character'
  if (/\p{Noncharacter_Code_Point}/u.test(ch)) return 'is a noncharacter'
  if (/\p{Cc}/u.test(ch)) return 'is a control character'
  if (/[\p{Zl}\p{Zp}]/u.test(ch)) return 'breaks the line: a name is one line'
  if (FILLERS.has(cp)) return 'is a filler that shows as blank'
  if (BIDI.has(cp)) return 'is a bidirectional control: it makes text show in another order than it is stored'
  if (/\p{Cf}/u.test(ch)) {
    if (cp === 0x200d) {
      if (is(VIRAMA, cps[i - 1])) return undefined
      if (is(EMOJI_END, cps[i - 1]) && is(PICTOGRAPH, cps[i + 1])) return undefined
      return 'is invisible; it is allowed only after a virama or between the parts of an emoji'
    }
    if (cp === 0x200c) {
      if (is(VIRAMA, cps[i - 1])) return undefined
      const b = before(cps, i, TRANSPARENT)
      const a = after(cps, i, TRANSPARENT)
      if (is(JOINING_LETTER, b) && is(LETTER, b) && is(JOINING_LETTER, a) && is(LETTER, a)) return undefined
      return 'is invisible; it is allowed only after a virama or between letters of a joining script such as Arabic'
    }
    if (TAG.test(ch) && inTagSequence) return undefined
    if (cp === 0x180e && is(MONGOLIAN_LETTER, cps[i - 1]) && is(MONGOLIAN_LETTER, cps[i + 1]))
      return undefined
    return 'is an invisible format character'
  }
  // Default-ignorable code points are assigned as Cf, marks or letters; any other is unassigned.
  if (/\p{Default_Ignorable_Code_Point}/u.test(ch) && !/[\p{L}\p{M}]/u.test(ch))
    return 'is a reserved invisible code point'
  return undefined
}

const fromCodePoints = (cps: number[]) => cps.map((cp) => String.fromCodePoint(cp)).join('')
const toCodePoints = (text: string) => Array.from(text, (c) => c.codePointAt(0) as number)

/** Indexes (in code points) of the emoji tag sequences of a name, where tag characters belong. */
function tagSequencePositions(cps: number[]): Set<number> {
  const inside = new Set<number>()
  if (!cps.some((cp) => cp === 0x1f3f4)) return inside
  const text = fromCodePoints(cps)
  for (const m of text.matchAll(TAG_SEQUENCE)) {
    const start = toCodePoints(text.slice(0, m.index)).length
    const length = toCodePoints(m[0]).length
    for (let k = start; k < start + length; k++) inside.add(k)
  }
  return inside
}

// What shows nothing on its own.
const INVISIBLE = /[\p{White_Space}\p{Default_Ignorable_Code_Point}\p{M}\p{Cc}\p{Cf}\p{Z}\u2800]/gu
const EDGE_BLANKS = /^[\p{White_Space}\u2800]+|[\p{White_Space}\u2800]+$/gu

/**
 * Why a name may not be shown, as a message naming the first offending code point ("U+202E
 * RIGHT-TO-LEFT OVERRIDE is a bidirectional control: …"), or undefined when it may. Looks at the
 * NFC form, as it will be stored.
 */
export function visibleNameProblem(name: string): string | undefined {
  const nfc = name.normalize('NFC')
  const cps = toCodePoints(nfc)
  const tags = tagSequencePositions(cps)
  for (let i = 0; i < cps.length; i++) {
    const why = refusal(cps, i, tags.has(i))
    if (why) return `${codePointLabel(cps[i] as number)} ${why}`
  }
  if (nfc !== '' && nfc.replace(INVISIBLE, '') === '') return blankness(nfc)
  return undefined
}

/** How a name with nothing visible is described: "is blank", or naming an invisible character. */
function blankness(name: string): string {
  const first = /[^\p{White_Space}]/u.exec(name)?.[0]
  if (first === undefined) return 'is blank'
  return `shows as blank: it has only invisible characters, such as ${codePointLabel(first.codePointAt(0) as number)}`
}

/** NFC, without leading and trailing whitespace and U+2800: the form a name is stored in. */
export function normalizeName(name: string): string {
  return name.normalize('NFC').replace(EDGE_BLANKS, '')
}

/**
 * For names stored before these rules (or from any other source): the name without the code
 * points a name may not have, NFC and trimmed; null when nothing visible is left.
 */
export function sanitizeName(name: string): string | null {
  const cps = toCodePoints(name.normalize('NFC'))
  const tags = tagSequencePositions(cps)
  let out = cps.filter((_, i) => refusal(cps, i, tags.has(i)) === undefined)
  // Taking one out can leave a joiner out of its context (😀, ZWJ, U+202E, 😀): again until stable.
  for (;;) {
    const t = tagSequencePositions(out)
    const next = out.filter((_, i) => refusal(out, i, t.has(i)) === undefined)
    if (next.length === out.length) break
    out = next
  }
  const clean = normalizeName(fromCodePoints(out))
  return clean.replace(INVISIBLE, '') === '' ? null : clean
}

/**
 * A zod schema for a name people see: normalised (NFC, trimmed), held to min–max characters
 * (services/text/graphemes.ts; checked first, so that the rules below never read more than that),
 * then checked by visibleNameProblem. A name that trims to nothing is described as blank.
 * @param extra a further check on the name: a message when it fails (file names: no slashes)
 */
export function visibleName(
  limits: { min?: number; max: number },
  description?: string,
  extra?: (name: string) => string | undefined,
) {
  const min = limits.min ?? 1
  const rule = `${describeCharacterRange({ min, max: limits.max })}, shown as they are: no control, format or bidirectional characters, not blank`
  const why = (raw: string): string | undefined => {
    const name = normalizeName(raw)
    if (name === '' && raw !== '') return blankness(raw.normalize('NFC'))
    const length = checkCharacters(name, { min, max: limits.max })
    if (length) return describeCharacterProblem(length)
    return visibleNameProblem(name) ?? extra?.(name)
  }
  return z
    .string()
    .check((ctx) => {
      const problem = why(ctx.value)
      if (problem) ctx.issues.push({ code: 'custom', message: problem, input: ctx.value, continue: false })
    })
    .overwrite(normalizeName)
    .describe(description ? `${description}; ${rule}` : rule.charAt(0).toUpperCase() + rule.slice(1))
}
