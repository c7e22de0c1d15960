import { useCallback, useRef, useState } from 'preact/hooks'

/**
 * Actions that must not run twice at once (a double click on Create group, Remove, Add, Leave,
 * Save): `run(key, work)` starts `work` unless the same key is running (then returns undefined),
 * and `busy(key)` says whether it is, for the button to be disabled meanwhile. The running set is
 * also kept outside the render, so two clicks before the next render still start one request.
 */
export function useBusy(): {
  busy: (key: string) => boolean
  run: <T>(key: string, work: () => Promise<T>) => Promise<T> | undefined
} {
  const running = useRef(new Set<string>())
  const [, redraw] = useState(0)
  const run = useCallback(<T>(key: string, work: () => Promise<T>): Promise<T> | undefined => {
    if (running.current.has(key)) return undefined
    running.current.add(key)
    redraw((n) => n + 1)
    const done = () => {
      running.current.delete(key)
      redraw((n) => n + 1)
    }
    const p = work()
    p.then(done, done)
    return p
  }, [])
  const busy = useCallback((key: string) => running.current.has(key), [])
  return { busy, run }
}
