import { useLayoutEffect, useRef, useState } from 'preact/hooks'
import { isImageType, uploadTypeOf } from '../attach-types.ts'
import { useApp } from '../context.ts'
import { useAvatar, useName } from '../names.ts'
import { Avatar } from './Avatar.tsx'

/**
 * The signed-in user's profile (docs/protocol.md#profiles): their display name, and their avatar
 * picked from an image file (uploaded as a profile photo, purpose "avatar", with progress, then
 * profile.set) or removed. No chat is needed: a new user sets a photo before their first chat.
 */
export function ProfilePanel({ onClose }: { onClose: () => void }) {
  const { client, me, names } = useApp()
  const name = useName(names, me)
  const avatar = useAvatar(names, me)
  const [displayName, setDisplayName] = useState(names.hasName(me) ? name : '')
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null)
  const [said, setSaid] = useState('')
  const [error, setError] = useState('')
  const field = useRef<HTMLInputElement>(null)
  useLayoutEffect(() => field.current?.focus(), [])
  const fail = (e: Error) => {
    setSaid('')
    setError(e.message)
  }

  const pick = (input: HTMLInputElement) => {
    const file = input.files?.[0]
    input.value = ''
    if (!file) return
    setError('')
    setSaid('')
    const type = uploadTypeOf(file)
    if (!isImageType(type)) {
      setError(`${file.name} is not an image the server takes (JPEG, PNG, WebP, GIF or AVIF).`)
      return
    }
    setProgress({ sent: 0, total: file.size })
    client
      .uploadMedia(file, {
        purpose: 'avatar',
        contentType: type,
        name: file.name,
        onProgress: (sent, total) => setProgress({ sent, total }),
      })
      .then(({ mediaId }) => client.setProfile({ avatar: mediaId }))
      // The SDK's profile cache takes the answer: the new photo shows wherever the user does.
      .then(() => setSaid('Photo saved'), fail)
      .finally(() => setProgress(null))
  }

  return (
    <section id="profile-panel" aria-labelledby="profile-title">
      <div class="profile-head">
        <h2 id="profile-title">Your profile</h2>
        <button type="button" class="close" aria-label="Close your profile" onClick={onClose}>
          ×
        </button>
      </div>
      <div class="profile-photo">
        <Avatar userId={me} size={72} />
        <div class="profile-photo-actions">
          <label class="button" for="avatar-file">
            {avatar ? 'Change photo' : 'Choose a photo'}
          </label>
          <input
            id="avatar-file"
            type="file"
            accept="image/jpeg,image/png,image/webp,image/gif,image/avif"
            class="visually-hidden"
            onChange={(e) => pick(e.target as HTMLInputElement)}
          />
          {avatar && (
            <button
              type="button"
              id="remove-avatar"
              onClick={() => client.setProfile({ avatar: null }).then(() => setSaid('Photo removed'), fail)}
            >
              Remove photo
            </button>
          )}
        </div>
      </div>
      {progress && (
        <progress
          id="avatar-progress"
          value={progress.sent}
          max={progress.total || 1}
          aria-label="Uploading your photo"
        />
      )}
      <form
        id="profile"
        onSubmit={(e) => {
          e.preventDefault()
          setError('')
          const n = displayName.trim()
          client.setProfile({ displayName: n === '' ? null : n }).then(() => setSaid('Name saved'), fail)
        }}
      >
        <label for="display-name">Display name</label>
        <div class="profile-row">
          <input
            id="display-name"
            ref={field}
            placeholder={me}
            autocomplete="nickname"
            maxLength={64}
            value={displayName}
            onInput={(e) => setDisplayName((e.target as HTMLInputElement).value)}
          />
          <button type="submit">Save</button>
        </div>
      </form>
      <p id="profile-status" role="status">
        {said}
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </section>
  )
}
