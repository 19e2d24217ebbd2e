// zxing-wasm's reader (QR decoding in WebAssembly); the .wasm file is served beside it.
export { prepareZXingModule, readBarcodes } from "zxing-wasm/reader";
