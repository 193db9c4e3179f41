//! Acceptance: bad input gives a typed error naming the cause, never a panic.

use tell_probe::probe::fit_rows;
use tell_probe::{
    cross_validate, fit, labels_from_options, CvOptions, FitOptions, Matrix, ProbeError,
};

fn data() -> (Vec<f32>, Vec<bool>, Vec<u32>) {
    let x: Vec<f32> = (0..60).map(|i| ((i * 7) % 11) as f32).collect();
    let y: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
    let g: Vec<u32> = (0..20).map(|i| i / 2).collect();
    (x, y, g)
}

#[test]
fn one_class_is_named() {
    let (x, _, g) = data();
    let m = Matrix::new(&x, 20, 3).unwrap();
    let err = fit(&m, &[true; 20], &g, &FitOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::OneClass {
                n_pos: 20,
                n_neg: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("one class"));
}

#[test]
fn nan_and_inf_are_located() {
    let (mut x, y, g) = data();
    x[3 * 4 + 2] = f32::NAN;
    let err = fit(
        &Matrix::new(&x, 20, 3).unwrap(),
        &y,
        &g,
        &FitOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ProbeError::NonFinite { row: 4, col: 2, .. }),
        "{err}"
    );
    x[3 * 4 + 2] = 0.0;
    x[0] = f32::INFINITY;
    let err = fit(
        &Matrix::new(&x, 20, 3).unwrap(),
        &y,
        &g,
        &FitOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ProbeError::NonFinite { row: 0, col: 0, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("non-finite"));
}

#[test]
fn fewer_groups_than_folds() {
    let (x, y, _) = data();
    let g: Vec<u32> = (0..20).map(|i| (i % 3) as u32).collect();
    let m = Matrix::new(&x, 20, 3).unwrap();
    let cv = CvOptions {
        folds: 5,
        ..Default::default()
    };
    let err = cross_validate(&m, &y, &g, None, &FitOptions::default(), &cv).unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::TooFewGroups {
                groups: 3,
                folds: 5
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_labels_are_counted() {
    let mut l: Vec<Option<bool>> = (0..20).map(|i| Some(i % 2 == 0)).collect();
    l[7] = None;
    l[12] = None;
    let err = labels_from_options(&l).unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::MissingLabels {
                count: 2,
                first_row: 7
            }
        ),
        "{err}"
    );
    // A label vector shorter than the matrix is also caught.
    let (x, y, g) = data();
    let m = Matrix::new(&x, 20, 3).unwrap();
    let err = fit(&m, &y[..15], &g, &FitOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ProbeError::LabelCount {
                labels: 15,
                rows: 20
            }
        ),
        "{err}"
    );
}

#[test]
fn shape_and_group_errors() {
    let (x, y, g) = data();
    assert!(matches!(
        Matrix::new(&x, 7, 3),
        Err(ProbeError::Shape { .. })
    ));
    assert!(matches!(
        Matrix::new(&[], 0, 3),
        Err(ProbeError::Empty { .. })
    ));
    let m = Matrix::new(&x, 20, 3).unwrap();
    let err = fit(&m, &y, &g[..5], &FitOptions::default()).unwrap_err();
    assert!(matches!(
        err,
        ProbeError::GroupCount {
            groups: 5,
            rows: 20
        }
    ));
}

#[test]
fn row_indices_out_of_range() {
    let (x, y, g) = data();
    let m = Matrix::new(&x, 20, 3).unwrap();
    let err = fit_rows(&m, &[0, 1, 25], &y, &g, &FitOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("row index 25 out of range"),
        "{err}"
    );
    let p = fit(
        &m,
        &y,
        &g,
        &FitOptions::for_family(tell_probe::Family::Diffmean),
    )
    .unwrap();
    assert!(p.score_rows(&m, &[3, 20]).is_err());
}
