"""Dispatch: finding the therapist for a booking (docs/dispatch.md).

- `rules`: eligibility rules and ranking over plain data;
- `matching`: batch matching (linear assignment, then exact chains) against the greedy baseline;
- `chains`: one vendor's day as an integer program over therapists' chains of bookings, and its bound;
- `candidates`: loading bookings, therapists and live positions, set-based;
- `service`: single and batch dispatch, the decision record, notifications;
- `lifecycle`: an assignment's life after dispatch, and the customer's rating.
"""
