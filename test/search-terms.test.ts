import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  foldForSearch,
  MAX_TERMS,
  parseSearchQuery,
  searchTerms,
  segmentedTerms,
} from '../services/messages/search-terms.ts'

/** A small seeded generator (mulberry32): a failure names its seed and can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A string of length pieces drawn from the alphabet, letters and digits most often. */
function randomText(next: () => number, alphabet: readonly string[], length: number): string {
  let s = ''
  for (let i = 0; i < length; i++) s += alphabet[Math.floor(next() * alphabet.length)]
  return s
}

const reference = (text: string) => [...new Set(segmentedTerms(text))].slice(0, MAX_TERMS)

describe('searchTerms: words in every script', () => {
  const cases: Array<[string, string, string[]]> = [
    ['Chinese', '我家在上海东边。', ['我家', '在', '上海', '东边']],
    ['Japanese', '病院は機能していない', ['病院', 'は', '機能', 'し', 'てい', 'ない']],
    ['Japanese, half-width katakana', 'ﾋﾞｮｳｲﾝへ', ['ビョウイン', 'へ']],
    ['Thai', 'ฉันดื่มน้ำเย็นทุกวัน', ['ฉัน', 'ดื่ม', 'น้ํา', 'เย็น', 'ทุก', 'วัน']],
    ['Hindi: matras and virama stay', 'हिन्दी भाषा की किताबें', ['हिन्दी', 'भाषा', 'की', 'किताबें']],
    ['Arabic: harakat go', 'مَرْحَبًا بِالعالم', ['مرحبا', 'بالعالم']],
    ['Arabic: tatweel and hamza carriers go', 'عـــربي أحمد', ['عربي', 'احمد']],
    ['Hebrew: niqqud and cantillation go', 'שָׁלוֹם עוֹלָם֑', ['שלום', 'עולם']],
    ['German: full case folding and umlauts', 'Straße STRASSE Müller ẞ', ['strasse', 'muller', 'ss']],
    ['Turkish: İ, I, ı and i alike', 'İstanbul ISTANBUL ılık ILIK', ['istanbul', 'ilik']],
    ['Greek: final sigma and tonos', 'ΟΔΟΣ οδός', ['οδοσ']],
    ['Russian: ё as е', 'Ёлка ёлка елка', ['елка']],
    ['full-width Latin and digits', 'ＡＢＣ　１２３', ['abc', '123']],
    ['ligatures and compatibility digits', 'ﬁne x² ① ﾀﾞ', ['fine', 'x2', '1', 'ダ']],
    ['Lao', 'ຂ້ອຍກິນນ້ຳ', ['ຂ້ອຍ', 'ກິນ', 'ນ້ໍາ']],
    ['invisible characters inside a word', 'pass\u00adword zero\u200dwidth', ['password', 'zerowidth']],
    [
      'punctuation inside words splits them',
      "can't 3.14 foo_bar a@b.com",
      ['can', 't', '3', '14', 'foo', 'bar', 'a', 'b', 'com'],
    ],
    ['mixed scripts', 'Meet Müller at 上海 at 3pm', ['meet', 'muller', 'at', '上海', '3pm']],
  ]
  for (const [name, text, terms] of cases) {
    it(name, () => {
      assert.deepEqual(searchTerms(text), terms)
      assert.deepEqual(reference(text), terms, 'the general path')
    })
  }

  it('gives nothing for null, empty or wordless text', () => {
    assert.deepEqual(searchTerms(null), [])
    assert.deepEqual(searchTerms(''), [])
    assert.deepEqual(searchTerms('  ?! 😀 ... '), [])
  })

  it(`keeps the first ${MAX_TERMS} distinct terms, once each`, () => {
    const words = Array.from({ length: 400 }, (_, i) => `w${i}`)
    const terms = searchTerms(`${words.join(' ')} w1 W2`)
    assert.deepEqual(terms, words.slice(0, MAX_TERMS))
  })
})

describe('foldForSearch', () => {
  it('folds every code point as its upper and lower case, and is idempotent', () => {
    const bad: string[] = []
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue
      const c = String.fromCodePoint(cp)
      const f = foldForSearch(c)
      if (
        f !== foldForSearch(c.toUpperCase()) ||
        f !== foldForSearch(c.toLowerCase()) ||
        f !== foldForSearch(f)
      ) {
        bad.push(`U+${cp.toString(16).toUpperCase()}`)
      }
    }
    assert.deepEqual(bad, [])
  })

  it('removes optional marks only', () => {
    assert.equal(foldForSearch('Crème Brûlée Ñandú'), 'creme brulee nandu')
    // Letters whose stroke is part of the letter (no decomposition) stay themselves.
    assert.equal(foldForSearch('Ærø Łódź'), 'ærø łodz')
    assert.equal(foldForSearch('Ἀθῆναι ᾼ'), 'αθηναι αι')
    assert.equal(foldForSearch('й Ї'), 'и і')
    // Devanagari, Thai and Hangul keep what spells the word.
    assert.equal(foldForSearch('किताबें'), 'किताबें')
    assert.equal(foldForSearch('ง่าย'), 'ง่าย')
    assert.equal(foldForSearch('한국어'), '한국어')
  })
})

describe('searchTerms: the fast paths give what the segmenter gives', () => {
  it('on 20,000 random ASCII strings', () => {
    const alphabet = [
      ...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'.split(''),
      ...'aeiou0123456789'.split(''),
      ...' \'.,_:;@-!?"#$%&()*+/<=>[\\]^`{|}~\t\n\r'.split(''),
      '\u0000',
      '\u001b',
      '\u007f',
    ]
    for (let seed = 1; seed <= 20_000; seed++) {
      const text = randomText(random(seed), alphabet, 1 + (seed % 60))
      assert.deepEqual(searchTerms(text), reference(text), `seed ${seed}: ${JSON.stringify(text)}`)
    }
  })

  it('on every character to U+206F between letters, digits, spaces and marks of several scripts', () => {
    const contexts = [
      'X',
      'aXb',
      '1X2',
      ' Xa',
      'aX',
      'XX',
      'éX ',
      'אXב',
      'مXب',
      'αXβ',
      'жX',
      'X\u0301a',
      'a.X',
    ]
    const bad: string[] = []
    for (let cp = 0; cp <= 0x206f; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue
      const c = String.fromCodePoint(cp)
      for (const context of contexts) {
        const text = context.replaceAll('X', c)
        if (JSON.stringify(searchTerms(text)) !== JSON.stringify(reference(text)))
          bad.push(JSON.stringify(text))
      }
    }
    assert.deepEqual(bad, [])
  })

  it('on 20,000 random strings of Latin, Greek, Cyrillic, Hebrew and Arabic', () => {
    const ranges = [
      [0x20, 0x7e],
      [0xa0, 0x24f],
      [0x300, 0x36f],
      [0x370, 0x52f],
      [0x590, 0x6ff],
      [0x1e00, 0x1fff],
      [0x2000, 0x206f],
    ] as const
    const pool: string[] = []
    for (const [from, to] of ranges) for (let cp = from; cp <= to; cp++) pool.push(String.fromCodePoint(cp))
    // Letters and spaces more often, as in text.
    const alphabet = [...pool, ...' '.repeat(200), ...'abcdeéüßαβжщשםمب'.repeat(20)]
    for (let seed = 1; seed <= 20_000; seed++) {
      const text = randomText(random(seed), alphabet, 1 + (seed % 30))
      assert.deepEqual(searchTerms(text), reference(text), `seed ${seed}: ${JSON.stringify(text)}`)
    }
  })

  it('on 20,000 random strings of ASCII and other scripts', () => {
    const alphabet = [
      ...'abcdefXYZ019'.split(''),
      ...' \t\n\r'.split(''),
      ...".'_:@-,!".split(''),
      'é',
      'ß',
      'İ',
      'ı',
      '\u0301', // combining acute
      '\u0308', // combining diaeresis
      '\u200d', // zero-width joiner
      '\u200c', // zero-width non-joiner
      '\u200b', // zero-width space
      '\u00a0', // no-break space
      '\u3000', // ideographic space
      '\u2002', // en space: NFKC makes it an ASCII space
      'ﬁ',
      '①',
      'ໜ',
      'ﷺ',
      '\u00ad', // soft hyphen
      '上',
      '海',
      '我',
      'は',
      'ア',
      'ｶ',
      'ﾞ',
      'ｆ',
      '１',
      'ก',
      'น',
      '้',
      'ำ',
      'ह',
      'ि',
      '्',
      'न',
      'ש',
      'ָ',
      'ם',
      'م',
      'َ',
      'ـ',
      'ا',
      'Σ',
      'ς',
      '²',
      '😀',
      '👍🏽',
      '🇩🇪',
      '\u2066', // first strong isolate
    ]
    for (let seed = 1; seed <= 20_000; seed++) {
      const text = randomText(random(seed), alphabet, 1 + (seed % 40))
      assert.deepEqual(searchTerms(text), reference(text), `seed ${seed}: ${JSON.stringify(text)}`)
    }
  })
})

describe('parseSearchQuery', () => {
  it('takes the last word as a prefix unless the query ends outside a word', () => {
    assert.deepEqual(parseSearchQuery('pin'), { whole: [], prefix: 'pin' })
    assert.deepEqual(parseSearchQuery('Lunch PIN'), { whole: ['lunch'], prefix: 'pin' })
    assert.deepEqual(parseSearchQuery('lunch pin '), { whole: ['lunch', 'pin'], prefix: null })
    assert.deepEqual(parseSearchQuery('lunch pin?'), { whole: ['lunch', 'pin'], prefix: null })
    assert.deepEqual(parseSearchQuery('pin pin'), { whole: ['pin'], prefix: 'pin' })
    assert.deepEqual(parseSearchQuery('  ?! '), { whole: [], prefix: null })
  })

  it('segments a query as it segments messages, in every script', () => {
    assert.deepEqual(parseSearchQuery('上海'), { whole: [], prefix: '上海' })
    assert.deepEqual(parseSearchQuery('病院'), { whole: [], prefix: '病院' })
    assert.deepEqual(parseSearchQuery('上海東京'), { whole: ['上海'], prefix: '東京' })
    assert.deepEqual(parseSearchQuery('straß'), { whole: [], prefix: 'strass' })
    assert.deepEqual(parseSearchQuery('हिन्'), { whole: [], prefix: 'हिन्' })
    // An invisible character at the end is still inside the word.
    assert.deepEqual(parseSearchQuery('pin\u200d'), { whole: [], prefix: 'pin' })
  })
})
