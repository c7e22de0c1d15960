import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { contentDisposition } from '../services/media/media-kinds.ts'
import { sanitizeName, visibleName, visibleNameProblem } from '../services/text/visible-names.ts'

const chatName = visibleName({ max: 100 })
const refusal = (name: string) => chatName.safeParse(name).error?.issues[0]?.message

describe('names people see', () => {
  it('refuses the names of the issue, each with the offending code point named', () => {
    const cases: Array<[string, string]> = [
      ['\u200b', 'U+200B ZERO WIDTH SPACE is an invisible format character'],
      ['\u3164', 'U+3164 HANGUL FILLER is a filler that shows as blank'],
      ['\u2800', 'shows as blank: it has only invisible characters, such as U+2800 BRAILLE PATTERN BLANK'],
      [
        '\u200d\u200d\u200d',
        'U+200D ZERO WIDTH JOINER is invisible; it is allowed only after a virama or between the parts of an emoji',
      ],
      [
        'admins\u202e',
        'U+202E RIGHT-TO-LEFT OVERRIDE is a bidirectional control: it makes text show in another order than it is stored',
      ],
      ['\u0007team', 'U+0007 is a control character'],
    ]
    for (const [name, expected] of cases) assert.equal(refusal(name), expected, JSON.stringify(name))
  })

  it('refuses every other invisible or reordering character, and names that show nothing', () => {
    const refused = [
      'a\u200eb', // LRM
      'a\u200fb', // RLM
      ...['\u202a', '\u202b', '\u202c', '\u202d', '\u2066', '\u2067', '\u2068', '\u2069', '\u061c'].map(
        (c) => `admins${c}x`,
      ),
      'a\ufeffb', // BOM inside
      'a\u2060b', // word joiner
      'soft\u00adhyphen',
      'x\u2028y', // line separator
      'tab\there',
      'line\nbreak',
      'a\ud800b', // lone surrogate
      'a\ufffeb', // noncharacter
      'a\uffa0b', // halfwidth Hangul filler
      '\u1160\u115f', // Hangul jamo fillers alone
      '\u0301\u0302', // combining marks alone
      '\ufe0f\ufe0e', // variation selectors alone
      '\u034f', // combining grapheme joiner alone
      '   ',
      '\u3000\u2003', // ideographic and em spaces
      'Auf\u200clage', // ZWNJ in a Latin word (RFC 5892 allows it only in joining scripts or after a virama)
      'admin\u200ds', // ZWJ between Latin letters
      '😀\u200d', // ZWJ with nothing after
      'x\u{e0041}y', // a tag character outside an emoji tag sequence
    ]
    for (const name of refused) assert.ok(visibleNameProblem(name), `${JSON.stringify(name)} is refused`)
  })

  it('accepts names in every script, emoji sequences and the joiners scripts need', () => {
    const accepted = [
      'Holidays 2025',
      'Zoë & François',
      '👨‍👩‍👧‍👦 family', // emoji ZWJ sequence
      '👩🏽‍💻 devs',
      '🏳️‍🌈',
      '❤️‍🔥',
      '🏴󠁧󠁢󠁳󠁣󠁴󠁿 Scotland', // emoji tag sequence
      'می‌خواهم', // Persian: ZWNJ between Arabic-script letters
      'نامه‌ها',
      'क्‍ष', // Devanagari: ZWJ after a virama
      'ശ്രീ', // Malayalam
      'ശ്‌രീ', // Malayalam: ZWNJ after a virama
      'ශ්‍රී ලංකා', // Sinhala: ZWJ after al-lakuna
      'ᠮᠣᠩᠭᠣᠯ', // Mongolian
      'ᠠ\u180eᠠ', // Mongolian vowel separator between letters
      '上海的朋友',
      'שָׁלוֹם',
      'Ελληνικά',
      'Türkçe İstanbul',
      'ไทย',
      '한국어 \u1100\u1161\u11a8',
      'team \u2800 two', // U+2800 inside a name is a blank like a space
    ]
    for (const name of accepted) assert.equal(visibleNameProblem(name), undefined, JSON.stringify(name))
  })

  it('stores names in NFC, trimmed, and counts their length in characters', () => {
    assert.equal(chatName.parse('  Zoe\u0308\u2800 '), 'Zoë')
    assert.equal(chatName.parse('👨‍👩‍👧‍👦'.repeat(100)), '👨‍👩‍👧‍👦'.repeat(100))
    assert.equal(refusal('👨‍👩‍👧‍👦'.repeat(101)), 'has 101 characters; the limit is 100')
    assert.equal(refusal(''), 'is empty; at least 1 character is needed')
    assert.equal(refusal('   '), 'is blank')
  })

  it('checks the length first, so that a megabyte of name costs little and says how long it is', () => {
    const cases: Array<[string, string]> = [
      ['a'.repeat(1 << 20), 'has 1048576 characters; the limit is 100'],
      ['\u200b'.repeat(1 << 19), 'has 524288 characters; the limit is 100'],
      ['😀'.repeat(1 << 19), 'has more than 200 characters; the limit is 100'],
      [
        `a${'\u200d'.repeat(1 << 19)}`,
        'has a character of 524289 code points (character 1); one character may have at most 32',
      ],
      [
        `${' '.repeat(1 << 20)}\u2800`,
        'shows as blank: it has only invisible characters, such as U+2800 BRAILLE PATTERN BLANK',
      ],
    ]
    for (const [name, message] of cases) {
      const started = performance.now()
      assert.equal(refusal(name), message)
      assert.ok(performance.now() - started < 2000, `${message}: ${performance.now() - started} ms`)
    }
  })

  it('cleans names stored before these rules for display', () => {
    assert.equal(sanitizeName('invoice\u202efdp.exe'), 'invoicefdp.exe')
    assert.equal(sanitizeName('\u0007team\u200b'), 'team')
    assert.equal(sanitizeName('😀\u200d\u202e😀'), '😀😀', 'a ZWJ left without its emoji pair goes too')
    assert.equal(sanitizeName('👨‍👩‍👧‍👦.png'), '👨‍👩‍👧‍👦.png')
    assert.equal(sanitizeName('\u200b\u3164'), null)
  })
})

describe('Content-Disposition (RFC 6266, RFC 8187)', () => {
  it('never carries control, format or bidirectional characters, even from a stored name', () => {
    assert.equal(
      contentDisposition('file', 'invoice\u202efdp.exe'),
      `attachment; filename="invoicefdp.exe"; filename*=UTF-8''invoicefdp.exe`,
    )
    assert.equal(
      contentDisposition('file', 'a\u0007\u200b\u2066b\r\n.pdf'),
      `attachment; filename="ab.pdf"; filename*=UTF-8''ab.pdf`,
    )
    assert.equal(contentDisposition('file', '\u200b'), 'attachment')
    assert.equal(contentDisposition('image', null), 'inline')
  })

  it('encodes the name as RFC 8187 attr-chars, with an ASCII fallback without quote, backslash or %', () => {
    assert.equal(
      contentDisposition('file', `it's (100%) "done"*.pdf`),
      `attachment; filename="it's (100_) _done_*.pdf"; filename*=UTF-8''it%27s%20%28100%25%29%20%22done%22%2A.pdf`,
    )
    assert.equal(
      contentDisposition('file', 'plan é.pdf'),
      `attachment; filename="plan _.pdf"; filename*=UTF-8''plan%20%C3%A9.pdf`,
    )
    assert.equal(
      contentDisposition('image', 'a/b\\c.png'),
      `inline; filename="a_b_c.png"; filename*=UTF-8''a_b_c.png`,
    )
    // Only attr-char is left unencoded: ALPHA DIGIT ! # $ & + - . ^ _ ` | ~
    const value = contentDisposition('file', '👨‍👩‍👧‍👦 ! # $ & + ^ ` | ~ ; , = @ [ ] { }.txt')
    const encoded = value.split("filename*=UTF-8''")[1] ?? ''
    assert.match(encoded, /^[A-Za-z0-9!#$&+\-.^_`|~%]+$/)
    assert.equal(decodeURIComponent(encoded), '👨‍👩‍👧‍👦 ! # $ & + ^ ` | ~ ; , = @ [ ] { }.txt')
  })
})
