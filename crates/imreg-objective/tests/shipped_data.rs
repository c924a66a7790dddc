//! The shipped MNIST and Fashion-MNIST files: their SHA-256 digests, shapes, class counts and pixel totals
//! against the values the conversion script computed independently (Python's `hashlib`, `gzip`), and a
//! typed rejection of any file whose checksum differs from the manifest's.
use imreg_objective::data::shipped::{load_part, sha256_hex, verify, ShippedFile, PIXELS};
use imreg_objective::data::{Classification, DataError, Part, ShippedDataset};

/// Digests of `SHA256SUMS`, as `scripts/make_image_data.py` wrote them (Python `hashlib`).
const FASHION_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "e8761980a971272d171f9373ac9019a426c4600b2d071bf94bcccc4735fd62c7",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "367523151c92966df086e97c79ed46cc71449d32fde995f01fa8279a0b46e8e3",
    ),
    (
        "test-images-idx3-ubyte.gz",
        "9f080fff029fd8dd11ec36c8975d27dbb9ae2d350fb9ed9becf9f14944c6b62f",
    ),
    (
        "test-labels-idx1-ubyte.gz",
        "864290e45818d1c4f950b8dbb6af687ee6b3e7bc08575232ecb0bfc79b864c73",
    ),
];
const MNIST_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte.gz",
        "0053b2fed525a3c558c9c03fb6e330a5533f4798833fd56062952073e975c7db",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "484acd27a32dc5edc8b4c855b774abd8203edb1a328a65b25d5d2bd78af991d6",
    ),
    (
        "test-images-idx3-ubyte.gz",
        "e59e49c737460dba385f6152b06119cff566b2adf87c87391abd62cfb8b6af03",
    ),
    (
        "test-labels-idx1-ubyte.gz",
        "d93efcb9e65c37fb29229121ba62fb8c87708864dfc6ca7508564c315cf24ec1",
    ),
];

/// Per part: size, class counts, the sum of all pixel bytes and the first 12 labels (Python, from the
/// decompressed IDX files).
struct Expected {
    n: usize,
    counts: [usize; 10],
    pixel_bytes: u64,
    first_labels: [usize; 12],
}

fn expected(d: ShippedDataset, part: Part) -> Expected {
    use Part::*;
    use ShippedDataset::*;
    let (n, counts, pixel_bytes, first_labels) = match (d, part) {
        (Mnist, Train) => (
            8000,
            [801, 902, 793, 826, 784, 690, 811, 856, 755, 782],
            209_345_782,
            [7, 5, 1, 1, 9, 8, 8, 4, 4, 6, 6, 3],
        ),
        (Mnist, Test) => (
            2000,
            [200, 225, 198, 206, 196, 173, 203, 214, 189, 196],
            52_800_818,
            [6, 5, 2, 6, 7, 1, 0, 1, 5, 8, 7, 9],
        ),
        (FashionMnist, Train) => (
            10_000,
            [1000; 10],
            571_220_901,
            [4, 8, 8, 2, 0, 6, 3, 9, 7, 6, 0, 1],
        ),
        (FashionMnist, Test) => (2000, [200; 10], 115_199_859, [6, 0, 1, 9, 3, 3, 8, 4, 5, 2, 7, 4]),
        (_, All) => unreachable!("All is checked as Train ++ Test"),
    };
    Expected {
        n,
        counts,
        pixel_bytes,
        first_labels,
    }
}

fn pixel_bytes(c: &Classification) -> u64 {
    c.x.iter()
        .map(|&v| {
            let k = (v * 255.0).round();
            assert!(
                (0.0..=255.0).contains(&k) && v == k / 255.0,
                "pixel {v} is not a byte / 255"
            );
            k as u64
        })
        .sum()
}

#[test]
fn sha256_matches_the_standard_test_vectors() {
    // FIPS 180-2 examples
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn shipped_files_have_the_recorded_digests() {
    for (d, table) in [
        (ShippedDataset::Mnist, MNIST_SHA256),
        (ShippedDataset::FashionMnist, FASHION_SHA256),
    ] {
        for (name, digest) in table {
            let f = d.file(name).unwrap();
            assert_eq!(f.sha256, digest, "{} manifest line of {name}", d.name());
            assert_eq!(sha256_hex(f.bytes), digest, "{}/{name}", d.name());
            verify(&f).unwrap();
        }
        assert!(d.file("train-images-idx3-ubyte").is_err());
    }
}

#[test]
fn shipped_parts_have_their_shapes_counts_and_pixels() {
    for d in ShippedDataset::ALL {
        let mut parts = Vec::new();
        for part in [Part::Train, Part::Test] {
            let c = d.load(part).unwrap();
            let e = expected(d, part);
            assert_eq!(c.x.dim(), (e.n, PIXELS), "{} {part:?}", d.name());
            assert_eq!(c.classes, 10);
            assert_eq!(c.counts(), e.counts.to_vec(), "{} {part:?}", d.name());
            assert_eq!(c.labels[..12], e.first_labels, "{} {part:?}", d.name());
            assert_eq!(pixel_bytes(&c), e.pixel_bytes, "{} {part:?}", d.name());
            parts.push(c);
        }
        let all = d.load(Part::All).unwrap();
        assert_eq!(all.n(), parts[0].n() + parts[1].n());
        assert_eq!(
            all.subset(&(0..parts[0].n()).collect::<Vec<_>>()).unwrap(),
            parts[0]
        );
        assert_eq!(
            all.subset(&(parts[0].n()..all.n()).collect::<Vec<_>>()).unwrap(),
            parts[1]
        );
    }
}

/// Every shipped file, changed in one byte (or cut short), is rejected before it is decompressed, with an
/// error naming the file and both digests.
#[test]
fn a_file_whose_checksum_differs_is_rejected() {
    let d = ShippedDataset::Mnist;
    let images = d.file("test-images-idx3-ubyte.gz").unwrap();
    let labels = d.file("test-labels-idx1-ubyte.gz").unwrap();
    assert_eq!(load_part(&images, &labels).unwrap(), d.load(Part::Test).unwrap());
    for (which, original) in [("images", images), ("labels", labels)] {
        for corrupt in [
            |b: &mut Vec<u8>| {
                let mid = b.len() / 2;
                b[mid] ^= 0x01;
            },
            |b: &mut Vec<u8>| b.truncate(b.len() - 1),
            |b: &mut Vec<u8>| b.push(0),
        ] {
            let mut bytes = original.bytes.to_vec();
            corrupt(&mut bytes);
            let found = sha256_hex(&bytes);
            let copy = ShippedFile {
                bytes: &bytes,
                ..original
            };
            let err = match which {
                "images" => load_part(&copy, &labels),
                _ => load_part(&images, &copy),
            }
            .unwrap_err();
            assert_eq!(
                err,
                DataError::Checksum {
                    file: original.name.into(),
                    expected: original.sha256.into(),
                    found: found.clone(),
                }
            );
            let msg = err.to_string();
            for part in [original.name, original.sha256, found.as_str()] {
                assert!(msg.contains(part), "{msg} does not name {part}");
            }
        }
    }
}

/// Bytes that match their digest but are not what the loader expects still give typed errors.
#[test]
fn verified_but_malformed_files_give_typed_errors() {
    let labels = ShippedDataset::Mnist.file("test-labels-idx1-ubyte.gz").unwrap();
    let garbage = b"not gzip at all".to_vec();
    let digest = sha256_hex(&garbage);
    let not_gzip = ShippedFile {
        name: "x.gz",
        bytes: &garbage,
        sha256: &digest,
    };
    assert!(matches!(
        load_part(&not_gzip, &labels),
        Err(DataError::Header { .. })
    ));
    // labels in place of images: a well-formed gzip IDX file with the wrong magic number
    assert!(matches!(
        load_part(&labels, &labels),
        Err(DataError::BadMagic { .. })
    ));
    // the train labels with the test images: counts differ
    let images = ShippedDataset::Mnist.file("test-images-idx3-ubyte.gz").unwrap();
    let train_labels = ShippedDataset::Mnist.file("train-labels-idx1-ubyte.gz").unwrap();
    assert!(matches!(
        load_part(&images, &train_labels),
        Err(DataError::Shape { .. })
    ));
}

#[test]
fn datasets_are_named_and_a_bad_name_lists_the_valid_ones() {
    for d in ShippedDataset::ALL {
        assert_eq!(ShippedDataset::from_name(d.name()).unwrap(), d);
    }
    assert_eq!(ShippedDataset::Mnist.name(), "mnist");
    assert_eq!(ShippedDataset::FashionMnist.name(), "fashion-mnist");
    let e = ShippedDataset::from_name("cifar").unwrap_err();
    assert!(matches!(e, DataError::UnknownDataset { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("\"cifar\"") && msg.contains("mnist, fashion-mnist"),
        "{msg}"
    );
}

#[test]
fn first_per_class_is_a_balanced_prefix() {
    let train = ShippedDataset::Mnist.load(Part::Train).unwrap();
    let sub = train.first_per_class(30).unwrap();
    assert_eq!(sub.n(), 300);
    assert_eq!(sub.counts(), vec![30; 10]);
    // the first 30 of each class in the original order, the order kept
    let mut seen = [0usize; 10];
    let ix: Vec<usize> = (0..train.n())
        .filter(|&i| {
            seen[train.labels[i]] += 1;
            seen[train.labels[i]] <= 30
        })
        .collect();
    assert_eq!(sub, train.subset(&ix).unwrap());
    assert!(train.first_per_class(0).is_err());
    // class 5 has the fewest training examples, 690
    assert_eq!(train.first_per_class(690).unwrap().n(), 6900);
    let e = train.first_per_class(691).unwrap_err().to_string();
    assert!(e.contains("691") && e.contains("class 5"), "{e}");
}
