from datetime import timedelta

from django import forms

MAX_DAYS = 366


class OutcomesForm(forms.Form):
    """The page's choice: one of the user's clinics and a range of its local days (default the last 30)."""

    clinic = forms.ModelChoiceField(queryset=None, empty_label=None)
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, clinics):
        super().__init__(data)
        self.fields["clinic"].queryset = clinics

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The last day is before the first.")
            if (end - start) > timedelta(days=MAX_DAYS):
                raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return data
