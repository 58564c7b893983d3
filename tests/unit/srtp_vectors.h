// Published SRTP / SRTCP test vectors: RFC 3711 Appendix B.2 and B.3,
// RFC 7714 sections 16 and 17, and RFC 6188 section 7.
//
// All values are lowercase hex with no separators. The RFCs print hex in
// upper case and in groups, and wrap long values across lines; the strings
// here are those digits joined up, with nothing retyped by hand. Every
// value below was also recomputed independently (Python `cryptography`,
// AES-ECB/CTR/GCM) and matched the published value before it went in.
//
// Sources read:
//   RFC 3711: the RFC editor's plain text (as mirrored in
//     github.com/walterfan/webrtc_primer, doc/rfc/rfc3711.txt).
//   RFC 7714: sections 16 and 17 as sliced from the RFC editor's text
//     (github.com/codewandler/sipx,
//     crates/sipx-testkit/corpus/rfc7714/{rtp,rtcp}-vectors.txt).
//   RFC 6188: the RFC text itself could NOT be retrieved; see the note on
//     the rfc6188 groups below.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::test_vectors {

// ---------------------------------------------------------------------------
// RFC 3711 Appendix B.2: AES-CM (AES-128 in Segmented Integer Counter Mode)
// keystream.
//
// Per RFC 3711 4.1.1:  IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16),
// where i is the 48-bit packet index ROC || SEQ, and the keystream segment is
// E(k, IV) || E(k, IV + 1 mod 2^128) || ...
// This vector has ROC = SEQ = SSRC = 0, so the counter block is the 14-octet
// session salt followed by 16 zero bits (the RFC prints it "already
// shifted"). The RFC gives the first three and last three blocks of a
// 1044512-octet (65282-block) segment; the block counter is the low 16 bits.
// ---------------------------------------------------------------------------
namespace rfc3711_b2 {
inline constexpr const char* session_key = "2b7e151628aed2a6abf7158809cf4f3c";
// The 112-bit session salt k_s (first 14 octets of the printed "already
// shifted" value below).
inline constexpr const char* session_salt = "f0f1f2f3f4f5f6f7f8f9fafbfcfd";
// As printed: "Session Salt: F0F1...FCFD0000 (already shifted)".
inline constexpr const char* session_salt_shifted = "f0f1f2f3f4f5f6f7f8f9fafbfcfd0000";
inline constexpr uint32_t roc = 0x00000000;
inline constexpr uint16_t seq = 0x0000;
inline constexpr uint32_t ssrc = 0x00000000;
inline constexpr size_t keystream_segment_octets = 1044512;
inline constexpr size_t keystream_segment_blocks = 65282;

inline constexpr const char* counter_0000 = "f0f1f2f3f4f5f6f7f8f9fafbfcfd0000";
inline constexpr const char* counter_0001 = "f0f1f2f3f4f5f6f7f8f9fafbfcfd0001";
inline constexpr const char* counter_0002 = "f0f1f2f3f4f5f6f7f8f9fafbfcfd0002";
inline constexpr const char* counter_feff = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
inline constexpr const char* counter_ff00 = "f0f1f2f3f4f5f6f7f8f9fafbfcfdff00";
inline constexpr const char* counter_ff01 = "f0f1f2f3f4f5f6f7f8f9fafbfcfdff01";

inline constexpr const char* keystream_0000 = "e03ead0935c95e80e166b16dd92b4eb4";
inline constexpr const char* keystream_0001 = "d23513162b02d0f72a43a2fe4a5f97ab";
inline constexpr const char* keystream_0002 = "41e95b3bb0a2e8dd477901e4fca894c0";
// Blocks 0xfeff, 0xff00, 0xff01 are the last three of the segment (octets
// 1044464..1044511).
inline constexpr const char* keystream_feff = "ec8cdf7398607cb0f2d21675ea9ea1e4";
inline constexpr const char* keystream_ff00 = "362b7c3c6773516318a077d7fc5073ae";
inline constexpr const char* keystream_ff01 = "6a2cc3787889374fbeb4c81b17ba6c44";

// The same blocks concatenated: the first 48 and the last 48 keystream octets.
inline constexpr const char* keystream_first_48 =
    "e03ead0935c95e80e166b16dd92b4eb4"
    "d23513162b02d0f72a43a2fe4a5f97ab"
    "41e95b3bb0a2e8dd477901e4fca894c0";
inline constexpr const char* keystream_last_48 =
    "ec8cdf7398607cb0f2d21675ea9ea1e4"
    "362b7c3c6773516318a077d7fc5073ae"
    "6a2cc3787889374fbeb4c81b17ba6c44";
}  // namespace rfc3711_b2

// ---------------------------------------------------------------------------
// RFC 3711 Appendix B.3: key derivation (AES-128 CM PRF, RFC 3711 4.3).
//
// 4.3.1: key_id = <label> || r, with r = index DIV kdr (48 bits for SRTP);
//   "x = key_id XOR master_salt, where key_id and master_salt are aligned so
//   that their least significant bits agree (right-alignment)."
// 4.3.3: PRF_n(k_master, x) is AES-CM keyed by k_master with IV = x * 2^16,
//   "with the output keystream truncated to the n first (left-most) bits".
// Labels: 0x00 SRTP encryption key, 0x01 SRTP auth key, 0x02 SRTP salt;
//   4.3.2: 0x03/0x04/0x05 for SRTCP key/auth/salt, and for SRTCP the index
//   is "0 || SRTCP index" (E-bit replaced by 0).
// Here kdr = 0 ("a DIV 0 = 0"), so r is six zero octets.
//
// The RFC derives a 94-octet auth key (six AES blocks, the last truncated to
// 14 octets) to show the multi-block counter. HMAC-SHA1 suites (n_a = 160
// bits, RFC 3711 5.2) use the first 20 octets of that output; the PRF
// output for n = 160 is exactly that prefix, since output is truncated from
// the left.
// ---------------------------------------------------------------------------
namespace rfc3711_b3 {
inline constexpr const char* master_key = "e1f97a0d3e018be0d64fa32c06de4139";
inline constexpr const char* master_salt = "0ec675ad498afeebb6960b3aabe6";
inline constexpr const char* index_div_kdr = "000000000000";
inline constexpr uint64_t kdr = 0;
inline constexpr uint8_t label_cipher_key = 0x00;
inline constexpr uint8_t label_auth_key = 0x01;
inline constexpr uint8_t label_cipher_salt = 0x02;

// AES-CM input blocks (x * 2^16) for each label, as printed.
inline constexpr const char* prf_input_cipher_key = "0ec675ad498afeebb6960b3aabe60000";
inline constexpr const char* prf_input_cipher_salt = "0ec675ad498afee9b6960b3aabe60000";
inline constexpr const char* prf_input_auth_key = "0ec675ad498afeeab6960b3aabe60000";

// 16 octets (label 0x00).
inline constexpr const char* cipher_key = "c61e7a93744f39ee10734afe3ff7a087";
// Full first AES-CM output block for label 0x02; the salt is its first 14
// octets.
inline constexpr const char* cipher_salt_block = "30cbbc08863d8c85d49db34a9ae17ac6";
// 14 octets (label 0x02).
inline constexpr const char* cipher_salt = "30cbbc08863d8c85d49db34a9ae1";
// 94 octets (label 0x01), AES input blocks ...0000 through ...0005.
inline constexpr const char* auth_key_94 =
    "cebe321f6ff7716b6fd4ab49af256a15"
    "6d38baa48f0a0acf3c34e2359e6cdbce"
    "e049646c43d9327ad175578ef7227098"
    "6371c10c9a369ac2f94a8c5fbcdddc25"
    "6d6e919a48b610ef17c2041e47403576"
    "6b68642c59bbfc2f34db60dbdfb2";
// First 160 bits of auth_key_94: the HMAC-SHA1 session auth key.
inline constexpr const char* auth_key_160 = "cebe321f6ff7716b6fd4ab49af256a156d38baa4";
}  // namespace rfc3711_b3

// ---------------------------------------------------------------------------
// RFC 6188 section 7.1: AES-256-CM keystream, same counter values and
// segment length as RFC 3711 B.2 (session salt f0f1...fcfd, SSRC = index = 0).
//
// NOTE ON PROVENANCE: the RFC 6188 text itself was not retrievable here.
// These values were read from several independent open-source SRTP test
// suites that cite "RFC 6188 7.1" (libre's test/srtp.c and others), which
// agree with one another, and they were recomputed here with AES-256-CTR and
// matched. Treat them as very likely correct but not checked against the RFC
// text character by character.
// ---------------------------------------------------------------------------
namespace rfc6188_7_1 {
inline constexpr const char* session_key =
    "57f82fe3613fd170a85ec93c40b1f092"
    "2ec4cb0dc025b58272147cc438944a98";
inline constexpr const char* session_salt = "f0f1f2f3f4f5f6f7f8f9fafbfcfd";
inline constexpr const char* counter_0000 = "f0f1f2f3f4f5f6f7f8f9fafbfcfd0000";
inline constexpr size_t keystream_segment_blocks = 65282;
// Blocks 0x0000, 0x0001, 0x0002.
inline constexpr const char* keystream_first_48 =
    "92bdd28a93c3f52511c677d08b5515a4"
    "9da71b2378a854f67050756ded165bac"
    "63c4868b7096d88421b563b8c94c9a31";
// Blocks 0xfeff, 0xff00, 0xff01 (last three of the 65282-block segment).
inline constexpr const char* keystream_last_48 =
    "cea518c90fd91ced9cbb18c078a54711"
    "3dbc4814f4da5f00a08772b63c6a046d"
    "6eb246913062a16891433e97dd01a57f";
}  // namespace rfc6188_7_1

// ---------------------------------------------------------------------------
// RFC 6188 section 7.2: AES_256_CM_PRF key derivation (the RFC 3711 4.3 KDF
// with a 256-bit master key; master salt still 112 bits; kdr = 0, index 0).
//
// NOTE ON PROVENANCE: as for rfc6188_7_1 above (read from several SRTP test
// suites citing "RFC 6188, 7.2. AES_256_CM_PRF Test Cases", recomputed
// here and matched; RFC text not seen). Those suites give the auth key as
// 20 octets only; if the RFC prints a longer one, it was not seen.
// ---------------------------------------------------------------------------
namespace rfc6188_7_2 {
inline constexpr const char* master_key =
    "f0f04914b513f2763a1b1fa130f10e29"
    "98f6f6e43e4309d1e622a0e332b9f1b6";
inline constexpr const char* master_salt = "3b04803de51ee7c96423ab5b78d2";
// 32 octets (label 0x00).
inline constexpr const char* cipher_key =
    "5ba1064e30ec51613cad926c5a28ef73"
    "1ec7fb397f70a960653caf06554cd8c4";
// 14 octets (label 0x02).
inline constexpr const char* cipher_salt = "fa31791685ca444a9e07c6c64e93";
// 20 octets (label 0x01), the HMAC-SHA1 auth key.
inline constexpr const char* auth_key_160 = "fd9c32d39ed5fbb5a9dc96b30818454d1313dc05";
}  // namespace rfc6188_7_2

// ---------------------------------------------------------------------------
// RFC 7714: AES-GCM for SRTP/SRTCP. Material shared by sections 16 and 17.
//
// The vectors give SESSION keys and salts directly: there is no master key
// and no KDF step in them. RFC 7714 publishes no KDF vector for the GCM
// suites at all.
//
// KDF with a 96-bit master salt (GCM suites): RFC 7714 section 11 says only
// that AEAD_AES_128_GCM MUST use the RFC 3711 AES-CM PRF KDF and
// AEAD_AES_256_GCM the RFC 6188 AES_256_CM_PRF KDF. Erratum 4938 against
// RFC 7714 (rfc-editor.org/errata/eid4938) adds: "Since the KDF functions in
// those RFCs assume as input a 112-bit master salt, the 96-bit master salt
// specified in this document must be multiplied by 2^16 to form the 112-bit
// salt used as the master salt in those key derivation functions." -- i.e.
// 16 zero bits are appended on the RIGHT of the 12-octet salt (salt || 00 00)
// before the RFC 3711 4.3.1 XOR with <label> || r, and the session salt
// derived is 96 bits (the first 12 octets of PRF output).
//
// Tags are 16 octets in every vector here.
// ---------------------------------------------------------------------------
namespace rfc7714 {
inline constexpr const char* key_128 = "000102030405060708090a0b0c0d0e0f";
inline constexpr const char* key_256 =
    "000102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f";
// "Quid pro quo" (12 octets).
inline constexpr const char* salt = "517569642070726f2071756f";
inline constexpr size_t tag_octets = 16;

// GHASH subkey H = AES_K(0^128), as printed in the worked examples.
inline constexpr const char* ghash_h_128 = "c6a13b37878f5b826f4f8162a1c8d879";
inline constexpr const char* ghash_h_256 = "f29000b62a499fd0a9f39a6add2e7780";

// --- Section 16: the RTP packet all SRTP examples use -----------------------
// 12-octet header (V=2, PT=64, SEQ=0xf17b, TS=0x8041f8d3, SSRC=0x5501a0b2)
// and 38-octet payload "Gallia est omnis divisa in partes tres".
inline constexpr const char* rtp_packet =
    "8040f17b8041f8d35501a0b2"
    "47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
inline constexpr const char* rtp_header = "8040f17b8041f8d35501a0b2";
inline constexpr const char* rtp_payload =
    "47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
inline constexpr uint32_t rtp_ssrc = 0x5501a0b2;
inline constexpr uint32_t rtp_roc = 0x00000000;
inline constexpr uint16_t rtp_seq = 0xf17b;

// SRTP IV (RFC 7714 8.1): "The 12-octet IV used by AES-GCM SRTP is formed by
// first concatenating 2 octets of zeroes, the 4-octet SSRC, the 4-octet
// rollover counter (ROC), and the 2-octet sequence number (SEQ). The
// resulting 12-octet value is then XORed to the 12-octet salt to form the
// 12-octet IV."
//   00 00 | SSRC 55 01 a0 b2 | ROC 00 00 00 00 | SEQ f1 7b
//   XOR salt 51 75 69 64 20 70 72 6f 20 71 75 6f
inline constexpr const char* rtp_iv_input = "00005501a0b200000000f17b";
inline constexpr const char* rtp_iv = "51753c6580c2726f20718414";
// Encryption: AAD = the RTP header (12 octets here); plaintext = payload;
// the protected packet is header || ciphertext || 16-octet tag.
inline constexpr const char* rtp_aad = "8040f17b8041f8d35501a0b2";

// --- Section 17: the RTCP packet all SRTCP examples use ----------------------
// An SR from SSRC "Mars" (0x4d617273), 52 octets, with 31-bit SRTCP index
// 0x000005d4.
// CAUTION: the section 17 preamble prints a slightly different packet
// (rtcp_packet_preamble_as_printed below: length 000e, ...5031 twice,
// ...eb98). Every worked example in 17.1-17.4 uses rtcp_packet, and the
// published outputs are consistent only with rtcp_packet.
inline constexpr const char* rtcp_packet =
    "81c8000d4d617273"
    "4e5450314e545032525450200000042a0000e9304c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
inline constexpr const char* rtcp_packet_preamble_as_printed =
    "81c8000e4d6172734e5450314e545031525450200000042a0000eb984c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
inline constexpr const char* rtcp_header = "81c8000d4d617273";  // first 8 octets
inline constexpr uint32_t rtcp_ssrc = 0x4d617273;
inline constexpr uint32_t srtcp_index = 0x000005d4;  // 31-bit index
// ESRTCP word = E-flag (1 bit) || 31-bit SRTCP index.
inline constexpr const char* esrtcp_word_encrypted = "800005d4";  // E = 1
inline constexpr const char* esrtcp_word_unencrypted = "000005d4";  // E = 0

// SRTCP IV (RFC 7714 9.1): "formed by first concatenating 2 octets of
// zeroes, the 4-octet SSRC identifier, 2 octets of zeroes, a single "0" bit,
// and the 31-bit SRTCP index. The resulting 12-octet value is then XORed to
// the 12-octet salt to form the 12-octet IV." The E-flag is NOT in the IV.
//   00 00 | SSRC 4d 61 72 73 | 00 00 | 0+index 00 00 05 d4
inline constexpr const char* rtcp_iv_input = "00004d6172730000000005d4";
inline constexpr const char* rtcp_iv = "517524055203726f207170bb";
}  // namespace rfc7714

// ---------------------------------------------------------------------------
// RFC 7714 16.1.1 / 16.1.2: SRTP AEAD_AES_128_GCM encryption (and the same
// packet back for decryption). key = rfc7714::key_128, salt = rfc7714::salt,
// plaintext packet = rfc7714::rtp_packet, ROC = 0, SEQ = 0xf17b,
// IV = rfc7714::rtp_iv, AAD = rfc7714::rtp_aad.
// ---------------------------------------------------------------------------
namespace rfc7714_16_1 {
inline constexpr const char* ciphertext =
    "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833";
inline constexpr const char* tag = "899d7f27beb16a9152cf765ee4390cce";
// header || ciphertext || tag (66 octets).
inline constexpr const char* protected_packet =
    "8040f17b8041f8d35501a0b2"
    "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833"
    "899d7f27beb16a9152cf765ee4390cce";
}  // namespace rfc7714_16_1

// RFC 7714 16.1.3 / 16.1.4: SRTP AEAD_AES_128_GCM authentication tagging
// only (no encryption). Same key, salt, IV. AAD = the WHOLE RTP packet
// (header and payload), GCM plaintext is empty, and the tag is appended to
// the unmodified packet.
namespace rfc7714_16_1_tag_only {
inline constexpr const char* aad = rfc7714::rtp_packet;
inline constexpr const char* tag = "22493f82d2bce397e9d79e3b19aa4216";
// rtp_packet || tag (66 octets).
inline constexpr const char* protected_packet =
    "8040f17b8041f8d35501a0b2"
    "47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573"
    "22493f82d2bce397e9d79e3b19aa4216";
}  // namespace rfc7714_16_1_tag_only

// ---------------------------------------------------------------------------
// RFC 7714 16.2.1 / 16.2.2: SRTP AEAD_AES_256_GCM encryption / decryption.
// key = rfc7714::key_256; everything else as in 16.1.
// ---------------------------------------------------------------------------
namespace rfc7714_16_2 {
inline constexpr const char* ciphertext =
    "32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b";
inline constexpr const char* tag = "7aa3db36dfffd6b0f9bb7878d7a76c13";
// header || ciphertext || tag (66 octets).
inline constexpr const char* protected_packet =
    "8040f17b8041f8d35501a0b2"
    "32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b"
    "7aa3db36dfffd6b0f9bb7878d7a76c13";
}  // namespace rfc7714_16_2

// RFC 7714 16.2.3 / 16.2.4: SRTP AEAD_AES_256_GCM authentication tagging
// only. AAD = whole RTP packet, empty plaintext.
namespace rfc7714_16_2_tag_only {
inline constexpr const char* aad = rfc7714::rtp_packet;
inline constexpr const char* tag = "a866d5910f887463067ceefec45215d4";
// rtp_packet || tag (66 octets).
inline constexpr const char* protected_packet =
    "8040f17b8041f8d35501a0b2"
    "47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573"
    "a866d5910f887463067ceefec45215d4";
}  // namespace rfc7714_16_2_tag_only

// ---------------------------------------------------------------------------
// RFC 7714 17.1: SRTCP AEAD_AES_128_GCM encryption and tagging (E = 1).
// key = rfc7714::key_128, salt = rfc7714::salt, plaintext = rfc7714::rtcp_packet,
// SRTCP index = 0x000005d4, IV = rfc7714::rtcp_iv.
//
// Layout (RFC 7714 section 17 preamble, restating 9.2): the SRTCP packet is
//   "- The first 8 octets of the RTCP packet (part of the AAD).
//    - The cipher.
//    - The ESRTCP word (the final part of the AAD).
//    - Any Raw Data that might have been appended ..."
// and "the authentication tag is the last 8 or 16 octets of the cipher".
// So: header(8) || ciphertext || TAG(16) || E|index(4) -- the ESRTCP word
// comes AFTER the tag. This is the reverse of RFC 3711 AES-CM/HMAC SRTCP,
// where the auth tag follows the E|index word.
// AAD = first 8 octets || ESRTCP word (12 octets); plaintext = octets 8..end.
// ---------------------------------------------------------------------------
namespace rfc7714_17_1 {
inline constexpr const char* aad = "81c8000d4d617273800005d4";
inline constexpr const char* ciphertext =
    "63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda"
    "4ce09b4686303ded0bb9275b";
inline constexpr const char* tag = "c84aa45896cf4d2fc5abf87245d9eade";
// header || ciphertext || tag || ESRTCP word (72 octets).
inline constexpr const char* protected_packet =
    "81c8000d4d617273"
    "63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda"
    "4ce09b4686303ded0bb9275b"
    "c84aa45896cf4d2fc5abf87245d9eade"
    "800005d4";
}  // namespace rfc7714_17_1

// ---------------------------------------------------------------------------
// RFC 7714 17.2: SRTCP AEAD_AES_256_GCM verification and decryption (E = 1).
// The RFC gives the protected packet as input and rfc7714::rtcp_packet as the
// "Verified and decrypted packet". key = rfc7714::key_256, same salt, IV,
// index and AAD as 17.1.
// ---------------------------------------------------------------------------
namespace rfc7714_17_2 {
inline constexpr const char* aad = "81c8000d4d617273800005d4";
inline constexpr const char* ciphertext =
    "d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be"
    "8415f658c61de0476f1b6fad";
inline constexpr const char* tag = "1d1eb30c4446839f57ff6f6cb26ac3be";
// header || ciphertext || tag || ESRTCP word (72 octets).
inline constexpr const char* protected_packet =
    "81c8000d4d617273"
    "d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be"
    "8415f658c61de0476f1b6fad"
    "1d1eb30c4446839f57ff6f6cb26ac3be"
    "800005d4";
}  // namespace rfc7714_17_2

// ---------------------------------------------------------------------------
// RFC 7714 17.3: SRTCP AEAD_AES_128_GCM tagging only (E = 0, not encrypted).
// key = rfc7714::key_128, same salt, IV (the IV does not depend on E).
//
// AAD = the ENTIRE RTCP packet || ESRTCP word (E = 0); GCM plaintext is
// empty, so the "cipher" is just the tag. Per the section 17 preamble, the
// tagged SRTCP packet is "All of the AAD, except for the ESRTCP word" ||
// "The cipher (= the authentication tag)" || "The ESRTCP word" || raw data:
// rtcp_packet || TAG(16) || 000005d4 -- again the tag BEFORE the ESRTCP word.
// ---------------------------------------------------------------------------
namespace rfc7714_17_3 {
inline constexpr const char* aad =
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
    "000005d4";
inline constexpr const char* tag = "841dd9683dd78ec92ae58790125f62b3";
// rtcp_packet || tag || ESRTCP word (72 octets).
inline constexpr const char* protected_packet =
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
    "841dd9683dd78ec92ae58790125f62b3"
    "000005d4";
}  // namespace rfc7714_17_3

// ---------------------------------------------------------------------------
// RFC 7714 17.4: SRTCP AEAD_AES_256_GCM tag verification (E = 0). The RFC
// gives the tagged packet as input and rfc7714::rtcp_packet as the "Verified
// packet". key = rfc7714::key_256; AAD as in 17.3.
// ---------------------------------------------------------------------------
namespace rfc7714_17_4 {
inline constexpr const char* aad =
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
    "000005d4";
inline constexpr const char* tag = "91db4afbfeee5a978fab4393ed2615fe";
// rtcp_packet || tag || ESRTCP word (72 octets).
inline constexpr const char* protected_packet =
    "81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61"
    "deadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
    "91db4afbfeee5a978fab4393ed2615fe"
    "000005d4";
}  // namespace rfc7714_17_4

}  // namespace sluice::test_vectors
