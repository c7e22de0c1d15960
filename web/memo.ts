import { Component, type FunctionComponent, h } from 'preact'

/** A component that re-renders only when a prop changed (shallow), like React.memo, without preact/compat. */
export function memo<P extends object>(render: FunctionComponent<P>): FunctionComponent<P> {
  class Memo extends Component<P> {
    override shouldComponentUpdate(next: P): boolean {
      const a = this.props as Record<string, unknown>
      const b = next as Record<string, unknown>
      for (const k in a) if (k !== 'children' && a[k] !== b[k]) return true
      for (const k in b) if (!(k in a)) return true
      return false
    }
    override render(props: P) {
      return h(render, props)
    }
  }
  return Memo as unknown as FunctionComponent<P>
}
