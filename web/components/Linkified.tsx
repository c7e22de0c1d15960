const URL_RE = /\bhttps?:\/\/[^\s<>"]+[^\s<>".,;:!?)\]}'’”]/g

/** Text with its http(s) URLs as links; text nodes only (no HTML from user text). */
export function Linkified({ text }: { text: string }) {
  const parts: (string | { url: string })[] = []
  let at = 0
  for (const match of text.matchAll(URL_RE)) {
    const i = match.index ?? 0
    if (i > at) parts.push(text.slice(at, i))
    parts.push({ url: match[0] })
    at = i + match[0].length
  }
  if (at < text.length) parts.push(text.slice(at))
  return (
    <>
      {parts.map((p, i) =>
        typeof p === 'string' ? (
          p
        ) : (
          <a key={i} href={p.url} target="_blank" rel="noopener noreferrer">
            {p.url}
          </a>
        ),
      )}
    </>
  )
}
