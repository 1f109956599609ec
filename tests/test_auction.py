"""The uniform-price double auction (gateway.market.auction): named cases per clearing type, bad input, and
properties checked against a brute-force reference on small books."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.market import Book, ClearingType, clear

CAP, FLOOR = 9, 0  # small limits in the property tests, so that unresponsive bids are frequent


def book_of(buys, sells, **limits) -> Book:
    """Bids as (quantity, price[, all_or_none[, time]]) tuples; ids b0.. and s0.. in list order."""

    def side(prefix, bids):
        out = []
        for n, bid in enumerate(bids):
            entry = {"id": f"{prefix}{n}", "quantity": bid[0], "price": bid[1]}
            if len(bid) > 2:
                entry["all_or_none"] = bid[2]
            if len(bid) > 3:
                entry["time"] = bid[3]
            out.append(entry)
        return out

    return Book.from_dict({"buys": side("b", buys), "sells": side("s", sells), **limits})


# ------------------------------------------------------------------------------------------------------------
# Named cases, one per clearing type, with exact prices


def test_exact_when_both_marginal_bids_share_the_price():
    book = book_of([(10, 5), (3, 4)], [(10, 5), (3, 6)])
    result = clear(book)
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.EXACT, 5.0, 10.0)
    assert result.awards(book) == {"b0": 10.0, "s0": 10.0}
    assert result.marginal is None


def test_marginal_price_is_the_k_midpoint_of_the_gap():
    book = book_of([(10, 10)], [(10, 2)])
    result = clear(book)
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.MARGINAL_PRICE, 6.0, 10.0)
    assert clear(book_of([(10, 10)], [(10, 2)], k=0.25)).clearing_price == 4.0  # sell + k (buy - sell)
    assert clear(book_of([(10, 10)], [(10, 2)], k=1)).clearing_price == 10.0


def test_marginal_price_does_not_trigger_the_next_bids():
    # midpoint 6 would leave the buyer at 8 in the money and unserved; prices in [8, 9] clear exactly 10
    result = clear(book_of([(10, 10), (5, 8)], [(10, 2), (5, 9)]))
    assert (result.type, result.clearing_price) == (ClearingType.MARGINAL_PRICE, 8.0)


def test_marginal_price_with_an_unresponsive_marginal_buy_takes_the_seller_side():
    result = clear(book_of([(10, 9999)], [(10, 2)]))
    assert (result.type, result.clearing_price) == (ClearingType.MARGINAL_PRICE, 2.0)


def test_marginal_seller_is_partly_dispatched_at_its_own_price():
    book = book_of([(10, 10)], [(6, 2), (6, 4)])
    result = clear(book)
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.MARGINAL_SELLER, 4.0, 10.0)
    assert result.awards(book) == {"b0": 10.0, "s0": 6.0, "s1": 4.0}
    assert result.marginal == "s1"


def test_marginal_buyer_is_partly_served_at_its_own_price():
    book = book_of([(5, 10), (5, 3)], [(6, 2)])
    result = clear(book)
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.MARGINAL_BUYER, 3.0, 6.0)
    assert result.awards(book) == {"b0": 5.0, "b1": 1.0, "s0": 6.0}
    assert result.marginal == "b1"


def test_marginal_level_is_shared_pro_rata_not_by_time():
    # buyers exhausted at 10 with more sellers at the marginal seller's price: they share the 10 pro rata
    book = book_of([(10, 8)], [(10, 5, False, 0), (4, 5, False, 1)])
    result = clear(book)
    assert (result.type, result.clearing_price) == (ClearingType.MARGINAL_SELLER, 5.0)
    assert result.sell_awards == pytest.approx([10 * 10 / 14, 4 * 10 / 14])
    assert result.marginal == "s0"  # earliest time at the marginal level


def test_failure_when_unresponsive_demand_exceeds_supply():
    book = book_of([(6, 9999), (2, 9999), (5, 50)], [(4, 2), (3, 5)])
    result = clear(book)
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.FAILURE, 9999.0, 7.0)
    assert result.buy_awards == pytest.approx([6 * 7 / 8, 2 * 7 / 8, 0.0])  # unresponsive demand rationed
    assert result.sell_awards.tolist() == [4.0, 3.0]  # all supply sold


def test_failure_at_the_floor_when_unresponsive_supply_exceeds_demand():
    result = clear(book_of([(3, 5)], [(10, -9999)]))
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.FAILURE, -9999.0, 3.0)


@pytest.mark.parametrize(
    ("buys", "sells", "price"),
    [
        ([], [], 0.0),
        ([], [(4, 2)], 2.0),  # only sellers: the lowest offer
        ([(4, 7)], [], 7.0),  # only buyers: the highest bid
        ([(10, 1)], [(4, 2)], 1.5),  # nothing crosses: best sell + k (best buy - best sell)
        ([(10, 1)], [(4, 9999)], 1.0),  # best sell at the cap: the best buy
        ([(0, 5)], [(0, 1)], 0.0),  # zero quantities are no bids
    ],
)
def test_null(buys, sells, price):
    result = clear(book_of(buys, sells))
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.NULL, price, 0.0)
    assert not result.buy_awards.any() and not result.sell_awards.any()


def test_all_or_none_bid_is_dropped_rather_than_filled_in_part():
    book = book_of([(10, 10)], [(6, 2), (6, 4, True)])
    result = clear(book)
    assert result.excluded == ("s1",)
    assert (result.type, result.clearing_price, result.cleared_quantity) == (ClearingType.MARGINAL_BUYER, 10.0, 6.0)
    assert result.awards(book) == {"b0": 6.0, "s0": 6.0}


def test_all_or_none_bid_filled_in_full_stays():
    book = book_of([(10, 10, True)], [(6, 2), (6, 4)])
    result = clear(book)
    assert result.excluded == ()
    assert result.awards(book)["b0"] == 10.0


def test_curves_are_aggregated_by_price_level():
    result = clear(book_of([(2, 9), (3, 9), (4, 5)], [(1, 1), (2, 3), (3, 3)]))
    assert result.demand_curve.quantity.tolist() == [5.0, 9.0]
    assert result.demand_curve.price.tolist() == [9.0, 5.0]
    assert result.supply_curve.quantity.tolist() == [1.0, 6.0]
    assert result.supply_curve.price.tolist() == [1.0, 3.0]


def test_fractional_quantities_meet_exactly():
    # 0.1 + 0.2 != 0.3 in floats; integer ticks make this an exact match, not a 5e-17 marginal seller
    result = clear(book_of([(0.1, 5), (0.2, 5)], [(0.3, 5)]))
    assert (result.type, result.cleared_quantity) == (ClearingType.EXACT, 0.3)


def test_awards_are_plain_floats_for_json():
    book = book_of([(5, 10)], [(5, 2)])
    assert all(type(v) is float for v in clear(book).awards(book).values())
    assert type(clear(book).clearing_price) is float


# ------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"buys": [{"id": "b1", "price": 1}]}, "missing field"),
        ({"buys": [{"quantity": 1, "price": 1}]}, "missing field"),
        ({"buys": [{"id": "b1", "quantity": -1, "price": 1}]}, "quantity must be finite and >= 0"),
        ({"buys": [{"id": "b1", "quantity": 1, "price": 10000}]}, "outside"),
        ({"sells": [{"id": "s1", "quantity": 1, "price": -10000}]}, "outside"),
        ({"buys": [{"id": "b1", "quantity": 1, "price": 5}], "price_cap": 4}, "outside"),
        (
            {"buys": [{"id": "x", "quantity": 1, "price": 1}], "sells": [{"id": "x", "quantity": 1, "price": 1}]},
            "duplicate bid id 'x'",
        ),
        ({"k": 1.5}, "k must be in"),
        ({"k": -0.1}, "k must be in"),
        ({"price_cap": 1, "price_floor": 2}, "below price_cap"),
        ({"buys": [{"id": "b1", "quantity": "lots", "price": 1}]}, "expected a number"),
        ({"buys": [{"id": "b1", "quantity": True, "price": 1}]}, "expected a number"),
        ({"buys": [{"id": "b1", "quantity": 1, "price": float("nan")}]}, "finite"),
        ({"buys": [{"id": "b1", "quantity": 1, "price": 1, "all_or_nothing": True}]}, "unknown field"),
        ({"buys": [{"id": "b1", "quantity": 1, "price": 1, "all_or_none": "yes"}]}, "all_or_none"),
        ({"buys": [{"id": "b1", "quantity": 1, "price": 1, "time": 1.5}]}, "time must be an integer"),
        ({"buys": {"id": "b1"}}, "must be a list"),
        ({"bids": []}, "unknown book field"),
        ([], "JSON object"),
    ],
)
def test_bad_books_are_refused_with_a_reason(data, message):
    with pytest.raises(ValueError, match=message):
        Book.from_dict(data)


def test_numeric_strings_are_accepted():
    book = Book.from_dict({"buys": [{"id": "b", "quantity": "2.5", "price": "0.12"}]})
    assert book.buy_quantity.tolist() == [2.5] and book.buy_price.tolist() == [0.12]


# ------------------------------------------------------------------------------------------------------------
# Properties against a brute-force reference


def tradable(book: Book, price: float) -> float:
    """What could change hands at this price: min(demand at or above it, supply at or below it)."""
    demand = book.buy_quantity[book.buy_price >= price].sum()
    supply = book.sell_quantity[book.sell_price <= price].sum()
    return float(min(demand, supply))


def max_tradable(book: Book) -> float:
    """The most any uniform price can clear; the walk must reach it."""
    prices = np.concatenate([book.buy_price, book.sell_price])
    return max((tradable(book, p) for p in prices), default=0.0)


def without(book: Book, excluded: tuple[str, ...]) -> Book:
    keep_b = [n for n, i in enumerate(book.buy_ids) if i not in excluded]
    keep_s = [n for n, i in enumerate(book.sell_ids) if i not in excluded]
    return Book.from_arrays(
        [book.buy_ids[n] for n in keep_b],
        book.buy_quantity[keep_b],
        book.buy_price[keep_b],
        [book.sell_ids[n] for n in keep_s],
        book.sell_quantity[keep_s],
        book.sell_price[keep_s],
        price_cap=book.price_cap,
        price_floor=book.price_floor,
        k=book.k,
    )


bid = st.tuples(st.integers(0, 6), st.integers(FLOOR, CAP), st.booleans(), st.integers(0, 3))
books = st.builds(
    lambda buys, sells, k: book_of(buys, sells, price_cap=CAP, price_floor=FLOOR, k=k),
    st.lists(bid, max_size=8),
    st.lists(bid, max_size=8),
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
books_without_aon = st.builds(
    lambda buys, sells, k: book_of(
        [b[:2] for b in buys], [s[:2] for s in sells], price_cap=CAP, price_floor=FLOOR, k=k
    ),
    st.lists(bid, max_size=8),
    st.lists(bid, max_size=8),
    st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)


@settings(max_examples=400, deadline=None)
@given(books_without_aon)
def test_clears_the_most_that_can_trade_at_an_equilibrium_price(book):
    result = clear(book)
    assert result.cleared_quantity == max_tradable(book)
    assert result.cleared_quantity == tradable(book, result.clearing_price)
    assert book.price_floor <= result.clearing_price <= book.price_cap
    assert (result.type is ClearingType.NULL) == (result.cleared_quantity == 0)


@settings(max_examples=400, deadline=None)
@given(books)
def test_awards_are_consistent(book):
    result = clear(book)
    reduced = without(book, result.excluded)
    assert result.cleared_quantity == max_tradable(reduced)
    assert result.cleared_quantity == tradable(reduced, result.clearing_price)
    price = result.clearing_price
    assert (book.buy_price[result.buy_awards > 0] >= price).all()  # no out-of-the-money award
    assert (book.sell_price[result.sell_awards > 0] <= price).all()
    assert result.buy_awards.sum() == pytest.approx(result.cleared_quantity, abs=1e-9)
    assert result.sell_awards.sum() == pytest.approx(result.cleared_quantity, abs=1e-9)
    assert (result.buy_awards >= 0).all() and (result.sell_awards >= 0).all()
    assert (result.buy_awards <= book.buy_quantity + 1e-12).all()
    assert (result.sell_awards <= book.sell_quantity + 1e-12).all()
    for awards, quantity, aon in (
        (result.buy_awards, book.buy_quantity, book.buy_all_or_none),
        (result.sell_awards, book.sell_quantity, book.sell_all_or_none),
    ):
        assert ((awards[aon] == 0) | (awards[aon] == quantity[aon])).all()  # all-or-none: nothing or everything
    excluded = set(result.excluded)
    assert excluded <= {i for i, f in zip(book.buy_ids, book.buy_all_or_none, strict=True) if f} | {
        i for i, f in zip(book.sell_ids, book.sell_all_or_none, strict=True) if f
    }
    assert not any(result.awards(book).get(i) for i in excluded)


@settings(max_examples=200, deadline=None)
@given(books, st.randoms(use_true_random=False))
def test_input_order_does_not_matter(book, rnd: random.Random):
    def shuffled(book: Book) -> Book:
        perm_b = list(range(len(book.buy_ids)))
        perm_s = list(range(len(book.sell_ids)))
        rnd.shuffle(perm_b)
        rnd.shuffle(perm_s)
        return Book.from_arrays(
            [book.buy_ids[n] for n in perm_b],
            book.buy_quantity[perm_b],
            book.buy_price[perm_b],
            [book.sell_ids[n] for n in perm_s],
            book.sell_quantity[perm_s],
            book.sell_price[perm_s],
            buy_time=book.buy_time[perm_b],
            buy_all_or_none=book.buy_all_or_none[perm_b],
            sell_time=book.sell_time[perm_s],
            sell_all_or_none=book.sell_all_or_none[perm_s],
            price_cap=book.price_cap,
            price_floor=book.price_floor,
            k=book.k,
        )

    other = shuffled(book)
    first, second = clear(book), clear(other)
    assert (first.clearing_price, first.cleared_quantity, first.type) == (
        second.clearing_price,
        second.cleared_quantity,
        second.type,
    )
    assert (first.marginal, first.excluded) == (second.marginal, second.excluded)
    assert first.awards(book) == second.awards(other)
    for a, b in ((first.supply_curve, second.supply_curve), (first.demand_curve, second.demand_curve)):
        assert a.quantity.tolist() == b.quantity.tolist() and a.price.tolist() == b.price.tolist()


def test_a_large_random_book_clears_consistently():
    rng = np.random.default_rng(7)
    n = 20_000
    book = Book.from_arrays(
        [f"b{i}" for i in range(n)],
        rng.integers(1, 20, n),
        rng.integers(0, 100, n).astype(float),
        [f"s{i}" for i in range(n)],
        rng.integers(1, 20, n),
        rng.integers(0, 100, n).astype(float),
    )
    result = clear(book)
    assert result.cleared_quantity == max_tradable(book) == tradable(book, result.clearing_price)
    assert result.buy_awards.sum() == pytest.approx(result.cleared_quantity)
    assert result.sell_awards.sum() == pytest.approx(result.cleared_quantity)
