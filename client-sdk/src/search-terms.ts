/**
 * What search matches on: the words of a text, segmented and folded the same way for a message
 * and for a query, in every store (SQLite's FTS5 index, MongoDB's `terms` array) and on the
 * device for encrypted chats (client-sdk/src/mls/local-search.ts). One module for both, so a
 * search finds the same messages whether the server or the device runs it; the server imports it
 * through services/messages/search-terms.ts. Pure: no I/O, no dependency.
 */

/**
 * The version of what searchTerms gives. A store whose index was built with another version
 * (the mark is kept beside the index) builds it again at start. Bump it whenever searchTerms
 * gives other terms for some text: 1 was the regex runs of letters and digits before word
 * segmentation and folding.
 */
export const SEARCH_TERMS_VERSION = 2

/** Distinct terms kept per message (the first ones in the text): see searchTerms. */
export const MAX_TERMS = 256

/**
 * Combining marks that writers of the script may leave out, removed by foldForSearch (after NFD):
 * - U+0300–036F, U+1AB0–1AFF, U+1DC0–1DFF, U+20D0–20FF, U+FE20–FE2F: the general combining
 *   diacritics (Latin, Greek and Cyrillic accents, the Turkish İ's dot above, Greek iota
 *   subscript), U+0483–0489: Cyrillic titlo and number marks.
 * - U+0591–05BD, 05BF, 05C1–05C2, 05C4–05C5, 05C7: Hebrew cantillation and points (niqqud,
 *   dagesh, shin and sin dots, rafe); not maqaf, paseq or sof pasuq, which are punctuation.
 * - U+0610–061A, 064B–065F, 0670, 06D6–06DC, 06DF–06E4, 06E7–06E8, 06EA–06ED: Arabic harakat
 *   (tanwin, fatha, damma, kasra, shadda, sukun), maddah and hamza above/below (so آ أ إ fold
 *   to ا, ؤ to و, ئ to ي, as Arabic is often typed without them), superscript alef and the
 *   Quranic annotation marks.
 * Marks of other scripts stay: Devanagari matras and virama, Thai vowels and tone marks spell
 * the word.
 */
const OPTIONAL_MARKS =
  '\\u0300-\\u036f\\u0483-\\u0489\\u1ab0-\\u1aff\\u1dc0-\\u1dff\\u20d0-\\u20ff\\ufe20-\\ufe2f' +
  '\\u0591-\\u05bd\\u05bf\\u05c1\\u05c2\\u05c4\\u05c5\\u05c7' +
  '\\u0610-\\u061a\\u064b-\\u065f\\u0670\\u06d6-\\u06dc\\u06df-\\u06e4\\u06e7\\u06e8\\u06ea-\\u06ed'
/**
 * What foldForSearch removes: the optional marks, Arabic tatweel (U+0640, a stretch of the line
 * between letters) and the default-ignorable code points (soft hyphen, zero-width joiners,
 * bidi controls, variation selectors…), which Unicode's NFKC_Casefold removes too.
 */
const REMOVED = new RegExp(`[${OPTIONAL_MARKS}\\u0640\\p{Default_Ignorable_Code_Point}]`, 'gu')

/**
 * Folds text so that what a reader takes for the same word is the same string: the one
 * definition of "insensitive" for search. In order:
 * 1. NFKC: compatibility variants become their plain letters (full-width Ａ → A, half-width
 *    ｶ → カ, ligature ﬁ → fi, Arabic presentation forms → letters, ² → 2).
 * 2. Full case folding as lower(upper(lower(s))), and final sigma ς → σ: ß, ẞ, SS → ss;
 *    İ → i + U+0307 (removed in 3), I → i, ı → I → i, so Turkish İ, I, ı and i all fold to i;
 *    ǅ, Ǆ → dž. JavaScript has no case-folding function: this composition is the one that
 *    folds every code point and its upper and lower case alike (test/search-terms.test.ts
 *    checks all 1.1 million). It is locale-independent: Turkish i/ı are not told apart.
 * 3. NFD, then REMOVED goes: é, ü, ё → e, u, е; שָׁלוֹם → שלום; مَرْحَبًا → مرحبا; أحمد → احمد.
 * 4. NFKC again, so the result is normalized and foldForSearch(foldForSearch(s)) equals
 *    foldForSearch(s).
 * Unicode: UAX #15 (normalization forms), Unicode chapter 3.13 (default case folding), UCD
 * DerivedCoreProperties (Default_Ignorable_Code_Point).
 */
export function foldForSearch(text: string): string {
  return text
    .normalize('NFKC')
    .toLowerCase()
    .toUpperCase()
    .toLowerCase()
    .replaceAll('ς', 'σ')
    .normalize('NFD')
    .replace(REMOVED, '')
    .normalize('NFKC')
}

/**
 * Word segmentation by ICU's rules (UAX #29, with dictionaries for Chinese, Japanese, Thai, Lao,
 * Khmer and Burmese). 'und': the same words whatever the server's locale.
 */
let segmenter: Intl.Segmenter | undefined
// Made on first use: an SDK that never meets text outside the fast paths never needs one.
const wordSegmenter = () => {
  segmenter ??= new Intl.Segmenter('und', { granularity: 'word' })
  return segmenter
}

/** Runs of letters, digits and marks: a term never holds anything else (FTS5 quoting relies on it). */
const TERM = /[\p{L}\p{N}\p{M}]+/gu
/**
 * Text that NFKC may change before segmentation: all but the Thai, Lao and Tibetan blocks
 * (U+0E00–0FFF), where it would split what the dictionaries know: ำ becomes ํา, ໜ becomes ຫນ.
 */
const NFKC_SAFE = /[^\u0e00-\u0fff]+/g
/** Only ASCII: the fast path. */
const ASCII = /^\p{ASCII}*$/u
const ASCII_TERM = /[a-z0-9]+/g

/**
 * The search terms of text by the general path, the reference for every other: the text (in
 * NFKC where safe, NFKC_SAFE: half-width ｶ is the dictionaries' カ, x² is x2, ① is 1) cut at
 * every word boundary the segmenter finds, folded by foldForSearch, then split at anything that
 * is not a letter, digit or mark (UAX #29 keeps "can't", "3.14", "foo_bar" and "b.com" whole;
 * search matches their parts, as before). Duplicates kept, in order. Segments that are not
 * word-like hold no letters to keep, but for one ICU quirk it does not flag: a word ending in
 * "_" and a mark or format character ("ab_" + U+0301) is not word-like to it, and its letters
 * are kept here all the same.
 */
export function segmentedTerms(text: string): string[] {
  const input = text.normalize('NFC').replace(NFKC_SAFE, (run) => run.normalize('NFKC'))
  const pieces: string[] = []
  for (const s of wordSegmenter().segment(input)) pieces.push(s.segment)
  // One fold for all: folding never joins two pieces across the space put between them.
  return foldForSearch(pieces.join(' ')).match(TERM) ?? []
}

/**
 * Text in scripts that UAX #29 segments without dictionaries and whose combining marks are all
 * optional (foldForSearch removes them): Latin (to U+024F and U+1E00–1EFF), Greek, Cyrillic,
 * Hebrew, Arabic (U+0600–06FF), the combining diacritics, general punctuation. There the
 * segmenter puts no boundary between two letters or digits, nor before a mark (one after a space
 * stays with the space, and folding removes it, as every mark here), so folding the whole text
 * and cutting it at everything but letters, digits and marks gives the terms segmentedTerms
 * gives. Left out, as the segmenter and foldForSearch see them otherwise: U+0345 and U+037A (the
 * Greek iota subscript folds to the letter ι), U+200B and U+2065 (breaks that foldForSearch
 * removes).
 */
const ALPHABETIC = new RegExp(
  '^[\\p{ASCII}\\u00a0-\\u024f\\u0300-\\u0344\\u0346-\\u036f\\u0370-\\u0379\\u037b-\\u052f\\u0590-\\u06ff' +
    '\\u1e00-\\u1fff\\u2000-\\u200a\\u200c-\\u2064\\u2066-\\u206f]*$',
  'u',
)

/**
 * Every term of text in order, duplicates kept: what segmentedTerms gives, by a fast path where
 * one applies. Pure ASCII (most chat messages): the lower-cased runs of ASCII letters and digits.
 * ALPHABETIC text: foldForSearch, then the runs of letters, digits and marks. The segmenter alone
 * costs 5–10 µs a message, and neither path needs it; test/search-terms.test.ts holds both to
 * segmentedTerms, every character of ALPHABETIC in several contexts and random strings.
 */
function allTerms(text: string): string[] {
  if (ASCII.test(text)) return text.toLowerCase().match(ASCII_TERM) ?? []
  if (ALPHABETIC.test(text)) return foldForSearch(text).match(TERM) ?? []
  return segmentedTerms(text)
}

/**
 * The distinct terms of a message's text, in order of first appearance, at most MAX_TERMS
 * (256): what a search matches on: segmentedTerms, by a fast path for ASCII text and for text
 * in alphabetic scripts (allTerms). The cap bounds the index rows a message costs
 * (FTS5 tokens on SQLite, multikey index entries on MongoDB); a 4,000-character message has at
 * most about 2,000 words, and its first 256 distinct ones stay searchable.
 */
export function searchTerms(text: string | null): string[] {
  if (!text) return []
  return [...new Set(allTerms(text))].slice(0, MAX_TERMS)
}

/** What a query asks for: messages holding every whole term, and a term that starts with prefix. */
export interface SearchQuery {
  /** Terms a message must hold as they are, distinct. */
  whole: string[]
  /** The last word of the query, still being typed: a message must hold a term starting with it. */
  prefix: string | null
}

/** A query's last character is part of its last word: a letter, digit or mark, invisible characters aside. */
const ENDS_IN_WORD = /[\p{L}\p{N}\p{M}]\p{Default_Ignorable_Code_Point}*$/u

/**
 * A search query's terms, by the same segmentation and folding as messages (so `上海` finds
 * `我家在上海东边。`). The last term is a prefix ("pin" finds "pineapple", "上" finds "上海",
 * "straß" finds "Straße") unless the query ends with something that is not part of a word (a
 * space, punctuation): "pin " finds "pin" only. No terms: whole is empty and prefix null.
 */
export function parseSearchQuery(query: string): SearchQuery {
  const terms = allTerms(query)
  const prefix = terms.length && ENDS_IN_WORD.test(query) ? (terms.pop() as string) : null
  return { whole: [...new Set(terms)].slice(0, MAX_TERMS), prefix }
}
