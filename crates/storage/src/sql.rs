//! Helpers for statements that write many rows at once.

/// Placeholders for `rows` rows of `columns` values each, numbered from `$1`:
/// `($1, $2), ($3, $4)`.
pub(crate) fn values_rows(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    let mut n = 1;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
            n += 1;
        }
        sql.push(')');
    }
    sql
}

/// `$first, $first+1, …` for an `IN (…)` list of `count` values.
pub(crate) fn placeholder_list(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// Splits `total` rows into chunks whose sizes are powers of two, largest
/// first, none above `largest`. Statements are prepared and cached per text;
/// power-of-two chunks keep the number of distinct texts to a handful instead
/// of one per batch size.
pub(crate) fn power_of_two_chunks(total: usize, largest: usize) -> impl Iterator<Item = usize> {
    debug_assert!(largest.is_power_of_two());
    let mut left = total;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = if left >= largest { largest } else { 1 << (usize::BITS - 1 - left.leading_zeros()) };
        left -= size;
        Some(size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_value_rows() {
        assert_eq!(values_rows(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(placeholder_list(3, 2), "$3, $4");
    }

    #[test]
    fn chunks_are_powers_of_two_that_add_up() {
        assert_eq!(power_of_two_chunks(0, 256).collect::<Vec<_>>(), Vec::<usize>::new());
        assert_eq!(power_of_two_chunks(1000, 256).collect::<Vec<_>>(), vec![256, 256, 256, 128, 64, 32, 8]);
        for total in 0..600 {
            let chunks: Vec<usize> = power_of_two_chunks(total, 64).collect();
            assert_eq!(chunks.iter().sum::<usize>(), total);
            assert!(chunks.iter().all(|c| c.is_power_of_two() && *c <= 64));
        }
    }
}
