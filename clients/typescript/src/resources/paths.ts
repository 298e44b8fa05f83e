/** An id as one path segment: percent-encoded, so an id can never reach another route. */
export function segment(id: string): string {
  if (!id) throw new TypeError("an id is required");
  return encodeURIComponent(id);
}
