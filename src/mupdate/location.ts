/** The server part of a location: the text before the first `!`, or all of it (spec 4.3). */
export function serverPart(location: Buffer): string {
  const bang = location.indexOf(0x21);
  return (bang < 0 ? location : location.subarray(0, bang)).toString('latin1');
}
