import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  characters,
  checkCharacters,
  countCharacters,
  describeCharacterProblem,
  eachCodePointIsACharacter,
  MAX_CODE_POINTS_PER_CHARACTER,
  wholeCharactersWithin,
} from '../services/text/graphemes.ts'

const FAMILY_PARTS = '👨‍👩‍👧'
const ZALGO_SHORT = `o${'\u0308'.repeat(5)}`
const segmenter = new Intl.Segmenter('en', { granularity: 'grapheme' })
const bySegmenter = (s: string) => [...segmenter.segment(s)].length
const message = (text: string, limits: { min?: number; max?: number }) => {
  const p = checkCharacters(text, limits)
  return p && describeCharacterProblem(p)
}

describe('characters: user-perceived characters (grapheme clusters)', () => {
  it('counts what a person counts, in every script', () => {
    const cases: Array<[string, number]> = [
      ['😀'.repeat(2001), 2001],
      [`${'1'.repeat(3999)}👨‍👩‍👧‍👦`, 4000],
      ['e\u0301', 1], // e + combining acute
      ['é', 1],
      ['a\r\nb', 3], // CR LF is one (UAX #29 GB3)
      ['\n\r', 2],
      ['🏴󠁧󠁢󠁳󠁣󠁴󠁿', 1], // a tag sequence: 7 code points
      ['🇯🇵🇫🇷', 2], // regional indicator pairs
      ['👩🏽‍💻', 1],
      ['नमस्ते', bySegmenter('नमस्ते')],
      ['ศรีสะเกษ', bySegmenter('ศรีสะเกษ')],
      ['한국어', 3],
      ['\u1100\u1161\u11a8', 1], // conjoining jamo make one syllable
      ['我家在上海东边。', 8],
      ['', 0],
    ]
    for (const [text, n] of cases) assert.equal(countCharacters(text), n, JSON.stringify(text))
  })

  it('the fast path for text below U+0300 agrees with Intl.Segmenter', () => {
    // Random strings of the characters the fast path takes, CR and LF among them.
    const pool = ['a', 'Z', ' ', '\r', '\n', '\t', '\u0000', 'é', 'ß', 'ǅ', 'ʔ', '\u00ad', '\u02ff', '~']
    let seed = 7
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    for (let round = 0; round < 500; round++) {
      const s = Array.from(
        { length: Math.floor(random() * 40) },
        () => pool[Math.floor(random() * pool.length)],
      ).join('')
      assert.equal(countCharacters(s), bySegmenter(s), JSON.stringify(s))
    }
  })

  it('the fast path agrees with Intl.Segmenter on every BMP code point it takes', () => {
    // A text with anything the fast path does not take goes to the segmenter whole, so only
    // code points it takes, next to each other, need checking: each beside a Latin, Hangul and
    // Devanagari letter, and all of them in a row, forwards and backwards.
    const taken: string[] = []
    for (let cp = 0; cp <= 0xffff; cp++) {
      const x = String.fromCharCode(cp)
      if (cp < 0xd800 || cp > 0xdfff) if (eachCodePointIsACharacter(x)) taken.push(x)
    }
    assert.ok(taken.length > 60_000, `the fast path takes ${taken.length} code points`)
    const texts = [
      ...['a', '가', '\u0915'].map((n) => `${n}${taken.join(n)}${n}`),
      taken.join(''),
      [...taken].reverse().join(''),
    ]
    for (const text of texts) {
      assert.ok(eachCodePointIsACharacter(text))
      assert.equal(countCharacters(text), bySegmenter(text))
    }
  })

  it('mixed text, segmented only between its first and last joining code point, agrees with Intl.Segmenter', () => {
    // Pieces that join and pieces that do not, CR and LF among them, in random order.
    const pool = [
      'a',
      ' ',
      '\r',
      '\n',
      '\r\n',
      'é',
      '字',
      'к',
      '가',
      '\u0915',
      '\u094d',
      '\u0301',
      '\u200d',
      '\u200c',
      '\u0600',
      '\u1100',
      '\u1161',
      '\u11a8',
      '\u0e33',
      '\uff9e',
      '😀',
      '👩',
      '🏽',
      '\ufe0f',
      '🇯',
      '🇵',
      '\u{e0067}',
      '\u{e007f}',
      '🏴',
      '\ud800',
      '\udc00',
      FAMILY_PARTS,
      ZALGO_SHORT,
    ]
    let seed = 11
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed / 2 ** 31
    }
    const wrong: string[] = []
    for (let round = 0; round < 3000; round++) {
      const s = Array.from(
        { length: Math.floor(random() * 30) },
        () => pool[Math.floor(random() * pool.length)],
      ).join('')
      if (countCharacters(s) !== bySegmenter(s)) wrong.push(JSON.stringify(s))
    }
    assert.deepEqual(wrong, [])
  })

  it('says how many characters a text has and what the limit is', () => {
    assert.equal(message('😀'.repeat(4000), { max: 4000 }), undefined)
    assert.equal(message('😀'.repeat(4001), { max: 4000 }), 'has 4001 characters; the limit is 4000')
    assert.equal(
      message(`${'1'.repeat(4000)}👨‍👩‍👧‍👦`, { max: 4000 }),
      'has 4001 characters; the limit is 4000',
    )
    assert.equal(message('a'.repeat(4001), { max: 4000 }), 'has 4001 characters; the limit is 4000')
    assert.equal(message('', { min: 1 }), 'is empty; at least 1 character is needed')
    assert.equal(message('😀', { min: 8 }), 'has 1 character; at least 8 are needed')
  })

  it('stops counting past twice the limit, so a huge text costs no more than twice the limit', () => {
    const huge = '😀'.repeat(500_000) // 2 MB of UTF-16
    const p = checkCharacters(huge, { max: 4000 })
    assert.deepEqual(p, { kind: 'too_many', count: 8001, max: 4000, exact: false })
    assert.equal(describeCharacterProblem(p), 'has more than 8000 characters; the limit is 4000')
  })

  it(`refuses a character of more than ${MAX_CODE_POINTS_PER_CHARACTER} code points (zalgo), so that text is bounded in bytes`, () => {
    const zalgo = `a${'\u0301'.repeat(10_000)}`
    assert.equal(countCharacters(zalgo), 1)
    assert.equal(
      message(`ok ${zalgo}`, { max: 4000 }),
      'has a character of 10001 code points (character 4); one character may have at most 32',
    )
    // 32 code points in one character is still one character, accepted.
    assert.equal(message(`a${'\u0301'.repeat(31)}`, { max: 4000 }), undefined)
    assert.match(message(`a${'\u0301'.repeat(32)}`, { max: 4000 }) ?? '', /33 code points/)
    // One character of 41 code points around a letter (UAX #29 GB9b: Prepend joins what follows).
    const around = `${'\u0600'.repeat(20)}a${'\u0301'.repeat(20)}`
    assert.equal(countCharacters(around), 1)
    assert.match(message(`x ${around} y`, { max: 4000 }) ?? '', /41 code points \(character 3\)/)
    // Astral marks count as code points, not UTF-16 units: 1 + 20 × U+1D167 is 21 code points, 41 units.
    assert.equal(message(`a${'\u{1D167}'.repeat(20)}`, { max: 1 }), undefined)
  })

  it('cuts a preview between characters, within a number of UTF-16 units', () => {
    assert.equal(wholeCharactersWithin('hello', 10), 'hello')
    assert.equal(wholeCharactersWithin('😀'.repeat(100), 179), '😀'.repeat(89))
    assert.equal(wholeCharactersWithin(`${'a'.repeat(172)}${FAMILY_PARTS}`, 179), 'a'.repeat(172))
    assert.equal(wholeCharactersWithin(`${'a'.repeat(178)}e\u0301`, 179), 'a'.repeat(178))
    assert.equal(wholeCharactersWithin('a\r\nb', 2), 'a')
  })

  it('as a zod schema: the same count and message, the rule in the JSON Schema description', () => {
    const s = characters({ min: 1, max: 64 }, 'An id')
    assert.equal(s.safeParse('😀'.repeat(64)).success, true)
    assert.equal(s.safeParse('😀'.repeat(65)).error?.issues[0]?.message, 'has 65 characters; the limit is 64')
    assert.equal(s.safeParse('').error?.issues[0]?.message, 'is empty; at least 1 character is needed')
    assert.equal(s.description, 'An id; 1–64 characters (user-perceived: grapheme clusters, UAX #29)')
  })
})
