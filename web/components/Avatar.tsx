import { useEffect, useState } from 'preact/hooks'
import { useApp } from '../context.ts'
import { mediaUrls } from '../media-urls.ts'
import { useAvatar, useName } from '../names.ts'

/** Up to two letters for an initials circle: the first letters of the name's first and last words. */
export function initialsOf(name: string): string {
  const words = name
    .trim()
    .split(/[\s._@:-]+/)
    .filter(Boolean)
  const picked = words.length > 1 ? [words[0], words[words.length - 1]] : words.slice(0, 1)
  const letters = picked.map((w) => [...(w ?? '')][0] ?? '')
  return (letters.join('') || '?').toUpperCase()
}

/**
 * A user's avatar: the thumbnail of their profile image (docs/protocol.md#profiles), or a circle
 * with their initials while it loads, when they have none, or when it cannot be had. Follows the
 * user's profile events. Decorative: the name is always shown beside it.
 */
export function Avatar({ userId, size = 36 }: { userId: string; size?: number }) {
  const { client, names } = useApp()
  const name = useName(names, userId)
  const avatar = useAvatar(names, userId)
  const [src, setSrc] = useState<string | null>(null)
  useEffect(() => {
    setSrc(null)
    if (!avatar) return
    let live = true
    mediaUrls(client, avatar).then(
      (u) => live && setSrc(u.thumbnailUrl ?? u.url),
      () => {},
    )
    return () => {
      live = false
    }
  }, [client, avatar])
  const style = { width: `${size}px`, height: `${size}px`, fontSize: `${Math.round(size * 0.4)}px` }
  return (
    <span class="avatar" style={style} aria-hidden="true" data-user-id={userId}>
      {src ? (
        <img class="avatar-img" src={src} alt="" width={size} height={size} onError={() => setSrc(null)} />
      ) : (
        initialsOf(name)
      )}
    </span>
  )
}

/** A group's avatar: its name's initials on a circle (groups have no profile image). */
export function GroupAvatar({ name, size = 36 }: { name: string; size?: number }) {
  return (
    <span
      class="avatar group-avatar"
      style={{ width: `${size}px`, height: `${size}px`, fontSize: `${Math.round(size * 0.4)}px` }}
      aria-hidden="true"
    >
      {initialsOf(name)}
    </span>
  )
}
