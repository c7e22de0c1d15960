/**
 * A padlock in the text colour: the mark of an end-to-end encrypted chat (docs/e2ee.md), named
 * for screen readers by `label` (a bare icon has no text to read); `label` null when words beside
 * it say the same (then it is hidden from them).
 */
export function Lock({
  label = 'End-to-end encrypted',
  size = 14,
}: {
  label?: string | null
  size?: number
}) {
  if (label === null) {
    return (
      <svg class="lock" viewBox="0 0 16 16" width={size} height={size} aria-hidden="true" focusable="false">
        <path d={PADLOCK} fill="currentColor" />
      </svg>
    )
  }
  return (
    <svg
      class="lock"
      viewBox="0 0 16 16"
      width={size}
      height={size}
      role="img"
      aria-label={label}
      focusable="false"
    >
      <title>{label}</title>
      <path d={PADLOCK} fill="currentColor" />
    </svg>
  )
}

const PADLOCK =
  'M8 1a3.5 3.5 0 0 0-3.5 3.5V7H4a1 1 0 0 0-1 1v6a1 1 0 0 0 1 1h8a1 1 0 0 0 1-1V8a1 1 0 0 0-1-1h-.5V4.5A3.5 3.5 0 0 0 8 1Zm-2 3.5a2 2 0 1 1 4 0V7H6V4.5Z'
