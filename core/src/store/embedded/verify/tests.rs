//! Unit tests of `store verify` on segments built here: a clean one, a torn tail, damage in
//! the middle and what salvage keeps, frames that check but do not decode, the filler.

use super::*;

/// Three readable frames of different lengths, and where each starts.
fn segment() -> (Vec<u8>, [usize; 3]) {
    let frames: Vec<Vec<u8>> = [40, 19, 64].iter().map(|n| filler(*n).unwrap()).collect();
    let starts = [0, frames[0].len(), frames[0].len() + frames[1].len()];
    (frames.concat(), starts)
}

#[test]
fn a_clean_segment_has_no_damage_and_a_torn_tail_is_not_a_loss() {
    let (mut bytes, _) = segment();
    let clean = inspect(&bytes);
    assert_eq!((clean.frames, clean.damage.len()), (3, 0));
    bytes.extend_from_slice(&[0, 0, 0, 9, 1, 2]);
    let torn = inspect(&bytes);
    assert_eq!(torn.frames, 3);
    assert_eq!(
        torn.damage,
        [Damage {
            offset: 123,
            len: 6,
            kind: DamageKind::TornTail
        }]
    );
    assert!(!torn.damage[0].kind.is_loss());
}

#[test]
fn mid_segment_damage_is_a_loss_resumed_after_and_salvage_keeps_every_offset() {
    let (mut bytes, starts) = segment();
    bytes[starts[1] + FRAME_HEADER + 3] ^= 0x10;
    let found = inspect(&bytes);
    assert_eq!(found.frames, 2);
    assert_eq!(found.damage.len(), 1);
    let damage = &found.damage[0];
    assert_eq!((damage.offset, damage.len), (starts[1] as u64, 19));
    assert!(
        matches!(&damage.kind, DamageKind::Unreadable(why) if why.contains("checksum")),
        "{damage:?}"
    );
    assert_eq!(frames_within(&bytes, starts[1], starts[2]), Some(1));
    assert_eq!(frames_within(&bytes, starts[0], starts[2]), Some(2));
    assert_eq!(frames_within(&bytes, starts[0], starts[2] - 1), None);
    let fixed = patched(&bytes, &found.damage).unwrap();
    assert_eq!(fixed.len(), bytes.len());
    assert_eq!(&fixed[starts[2]..], &bytes[starts[2]..]);
    let after = inspect(&fixed);
    assert_eq!((after.frames, after.damage.len()), (3, 0));
}

#[test]
fn a_frame_that_checks_but_does_not_decode_is_damage_too() {
    let (mut bytes, starts) = segment();
    let payload = b"not a frame payload";
    let mut bad = (payload.len() as u32).to_be_bytes().to_vec();
    bad.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
    bad.extend_from_slice(payload);
    bytes.splice(starts[1]..starts[1], bad.iter().copied());
    let found = inspect(&bytes);
    assert_eq!(found.frames, 3);
    assert!(
        matches!(&found.damage[..], [Damage { offset, len: 27, kind: DamageKind::Unreadable(why) }]
            if *offset == starts[1] as u64 && why.contains("does not decode")),
        "{:?}",
        found.damage
    );
    assert_eq!(inspect(&patched(&bytes, &found.damage).unwrap()).frames, 4);
}

#[test]
fn positions_inside_a_replaced_place_move_to_its_start_and_others_stay() {
    let regions = [(2, 100, 300)];
    let at = |segment, offset| Position { segment, offset };
    assert_eq!(moved(at(2, 150), &regions), at(2, 100));
    for kept in [at(2, 100), at(2, 300), at(1, 150), at(3, 150)] {
        assert_eq!(moved(kept, &regions), kept);
    }
}

#[test]
fn filler_fits_every_length_a_frame_can_have() {
    for len in [19, 21, 22, 1000, 70_000] {
        let frame = filler(len).unwrap();
        assert_eq!(frame.len(), len);
        assert!(matches!(scan::classify(&frame, 0), At::Frame(_, next) if next == len));
    }
    assert!(filler(20).is_none() && filler(18).is_none());
}
