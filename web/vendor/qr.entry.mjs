// uqr's QR encoder (pure JavaScript): the statement and the signature one phone shows another.
export { encode as qrEncode } from "uqr";
