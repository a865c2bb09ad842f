// The demo page's way to the browser SDK: the module every tickwire server serves at
// /tickwire.js (built from js/ in the repository). Pages of your own import it directly.
export * from "/tickwire.js";
